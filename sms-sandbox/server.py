"""The SMS sandbox: Twilio's Messages API on loopback, for `make run` and the tests. Synthetic
numbers only; nothing leaves the machine.

    SMS_PORT=8107 SMS_ACCOUNT_SID=AC... SMS_AUTH_TOKEN=... SMS_NUMBERS=+16175550101,+16175550102 \
    SMS_DATA_DIR=.data/sms python server.py

Twilio's API (HTTP Basic, AccountSid:AuthToken):
  POST /2010-04-01/Accounts/{AccountSid}/Messages.json    send (form: To, From or
       MessagingServiceSid, Body, StatusCallback) -> 201 Message; status callbacks follow, signed
  GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
Test and demo controls:
  POST /sandbox/reply         {"from", "to", "body"}: a patient texts one of the numbers; the
                              signed inbound webhook goes to the configured inbound URL
  POST /sandbox/config        {"inbound_url"}
  POST /sandbox/unreachable   {"number"}: its messages end undelivered (30003)
  GET  /sandbox/messages      what was sent, with the status callbacks and their answers
  GET  /sandbox/inbound       what patients texted, with the webhook's answers
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from protocol import (
    API_VERSION,
    E164,
    TwilioError,
    message_resource,
    new_sid,
    now,
    num_segments,
    opt_out_type,
    rfc2822,
    signature,
)

log = logging.getLogger("sms-sandbox")
STEP = 0.05  # seconds between a message's status callbacks


class Twilio:
    """One account: its numbers, the messages sent, who opted out of which number."""

    def __init__(
        self, account_sid: str, auth_token: str, numbers: list[str], data_dir: Path | None
    ) -> None:
        self.account_sid, self.auth_token, self.numbers = account_sid, auth_token, numbers
        self.data_dir = data_dir
        self.messages: dict[str, dict[str, Any]] = {}
        self.inbound: list[dict[str, Any]] = []
        self.opted_out: set[tuple[str, str]] = set()  # (patient number, our number)
        self.unreachable: set[str] = set()
        self.inbound_url: str | None = None
        self.http = httpx.AsyncClient(timeout=10)
        self.tasks: set[asyncio.Task] = set()

    # -- persistence (make run keeps the texts across restarts) -----------------------------

    def load(self) -> None:
        if self.data_dir and (self.data_dir / "state.json").exists():
            state = json.loads((self.data_dir / "state.json").read_text())
            self.messages = state["messages"]
            self.inbound = state["inbound"]
            self.opted_out = {tuple(pair) for pair in state["opted_out"]}  # type: ignore[misc]
            self.unreachable = set(state["unreachable"])
            self.inbound_url = self.inbound_url or state.get("inbound_url")

    def save(self) -> None:
        if not self.data_dir:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "messages": self.messages,
            "inbound": self.inbound,
            "opted_out": sorted(self.opted_out),
            "unreachable": sorted(self.unreachable),
            "inbound_url": self.inbound_url,
        }
        (self.data_dir / "state.json.new").write_text(json.dumps(state, indent=1))
        (self.data_dir / "state.json.new").replace(self.data_dir / "state.json")

    # -- the API ------------------------------------------------------------------------------

    def authenticate(self, request: Request, account_sid: str) -> None:
        given = request.headers.get("authorization", "")
        try:
            user, _, password = (
                base64.b64decode(given.removeprefix("Basic ")).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if not (
            given.startswith("Basic ")
            and hmac.compare_digest(user, self.account_sid)
            and hmac.compare_digest(password, self.auth_token)
            and account_sid == self.account_sid
        ):
            raise TwilioError(401, 20003, "Authenticate")

    def create(self, form: dict[str, str]) -> dict[str, Any]:
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body")
        service = form.get("MessagingServiceSid")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and service:
            if not service.startswith("MG"):
                raise TwilioError(400, 21701, "The Messaging Service Sid is invalid.")
            sender = self.numbers[0]
        if not sender:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not E164.match(sender):
            raise TwilioError(
                400,
                21212,
                f"The 'From' number {sender} is not a valid phone number, shortcode, or "
                "alphanumeric sender ID.",
            )
        if sender not in self.numbers:
            raise TwilioError(
                400,
                21606,
                f"The 'From' phone number provided ({sender}) is not a valid message-capable "
                "Twilio phone number for this destination/account.",
            )
        if not body:
            raise TwilioError(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise TwilioError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if (to, sender) in self.opted_out:
            raise TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
        moment = rfc2822(now())
        record = {
            "sid": new_sid("SM"),
            "to": to,
            "from": sender,
            "body": body,
            "messaging_service_sid": service,
            "num_segments": num_segments(body),
            "status": "queued",
            "date_created": moment,
            "date_updated": moment,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "status_callback": form.get("StatusCallback"),
            "callbacks": [],
        }
        self.messages[record["sid"]] = record
        self.save()
        self.later(self.progress(record))
        return record

    def later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def progress(self, record: dict[str, Any]) -> None:
        """queued -> sent -> delivered (or undelivered, 30003, for an unreachable number), each
        step told to the StatusCallback as Twilio tells it."""
        final = "undelivered" if record["to"] in self.unreachable else "delivered"
        await self.callback(record, "queued")
        for status in ("sent", final):
            await asyncio.sleep(STEP)
            record["status"] = status
            record["date_updated"] = rfc2822(now())
            if status == "sent":
                record["date_sent"] = record["date_updated"]
            if status == "undelivered":
                record["error_code"], record["error_message"] = (
                    30003,
                    "Unreachable destination handset",
                )
            self.save()
            await self.callback(record, status)

    async def callback(self, record: dict[str, Any], status: str) -> None:
        url = record.get("status_callback")
        if not url:
            return
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": record["from"],
            "MessageSid": record["sid"],
            "MessageStatus": status,
            "SmsSid": record["sid"],
            "SmsStatus": status,
            "To": record["to"],
        }
        if status in ("undelivered", "failed"):
            params["ErrorCode"] = str(record["error_code"])
        answer = await self.post(url, params)
        record["callbacks"].append({"status": status, **answer})
        self.save()

    async def post(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        headers = {"X-Twilio-Signature": signature(self.auth_token, url, params)}
        try:
            response = await self.http.post(url, data=params, headers=headers)
        except httpx.HTTPError as err:
            log.info("webhook failed: %s", type(err).__name__)
            return {"answer": None, "error": type(err).__name__}
        return {
            "answer": response.status_code,
            "content_type": response.headers.get("content-type"),
            "text": response.text,
        }

    def reply(self, sender: str, to: str, body: str) -> dict[str, Any]:
        """A patient texts one of our numbers: Advanced Opt-Out applies the keyword, then the
        message goes to the inbound webhook (in the background, as Twilio does)."""
        kind = opt_out_type(body)
        if kind == "STOP":
            self.opted_out.add((sender, to))
        elif kind == "START":
            self.opted_out.discard((sender, to))
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": sender,
            "MessageSid": new_sid("SM"),
            "NumMedia": "0",
            "NumSegments": str(num_segments(body)),
            "SmsMessageSid": "",
            "SmsSid": "",
            "SmsStatus": "received",
            "To": to,
        }
        params["SmsMessageSid"] = params["SmsSid"] = params["MessageSid"]
        if kind:
            params["OptOutType"] = kind
        record = {"sid": params["MessageSid"], "params": params, "date_created": rfc2822(now())}
        self.inbound.append(record)
        self.save()
        self.later(self.deliver_inbound(record))
        return record

    async def deliver_inbound(self, record: dict[str, Any]) -> None:
        if not self.inbound_url:
            record["webhook"] = {"answer": None, "error": "no inbound URL configured"}
        else:
            record["webhook"] = await self.post(self.inbound_url, record["params"])
        self.save()


def create_app(twilio: Twilio) -> FastAPI:
    twilio.load()
    app = FastAPI(title="SMS sandbox (Twilio Messages API)")
    app.state.twilio = twilio
    base = f"/{API_VERSION}/Accounts/{{account_sid}}"

    @app.exception_handler(TwilioError)
    async def refused(request: Request, err: TwilioError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"{base}/Messages.json", status_code=201)
    async def send(account_sid: str, request: Request) -> dict[str, Any]:
        twilio.authenticate(request, account_sid)
        form = {key: str(value) for key, value in (await request.form()).items()}
        return message_resource(twilio.account_sid, twilio.create(form))

    @app.get(f"{base}/Messages/{{sid}}.json")
    async def read(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        twilio.authenticate(request, account_sid)
        if sid not in twilio.messages:
            raise TwilioError(
                404,
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages/"
                f"{sid}.json was not found",
            )
        return message_resource(twilio.account_sid, twilio.messages[sid])

    @app.post("/sandbox/reply", status_code=202)
    async def reply(request: Request) -> Any:
        given = await request.json()
        if given.get("to") not in twilio.numbers:
            return JSONResponse({"detail": "'to' must be one of the sandbox's numbers"}, 422)
        return twilio.reply(given["from"], given["to"], given["body"])

    @app.post("/sandbox/config")
    async def config(request: Request) -> dict[str, Any]:
        given = await request.json()
        twilio.inbound_url = given.get("inbound_url")
        twilio.save()
        return {"inbound_url": twilio.inbound_url, "numbers": twilio.numbers}

    @app.post("/sandbox/unreachable")
    async def unreachable(request: Request) -> dict[str, Any]:
        twilio.unreachable.add((await request.json())["number"])
        twilio.save()
        return {"unreachable": sorted(twilio.unreachable)}

    @app.get("/sandbox/messages")
    async def messages() -> list[dict[str, Any]]:
        return [
            {
                **message_resource(twilio.account_sid, record),
                "status_callback": record["status_callback"],
                "callbacks": record["callbacks"],
            }
            for record in twilio.messages.values()
        ]

    @app.get("/sandbox/inbound")
    async def inbound() -> list[dict[str, Any]]:
        return twilio.inbound

    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host = os.environ.get("SMS_HOST") or "127.0.0.1"  # loopback: a sandbox, not a gateway
    port = int(os.environ.get("SMS_PORT") or 8107)
    data_dir = os.environ.get("SMS_DATA_DIR")
    twilio = Twilio(
        os.environ["SMS_ACCOUNT_SID"],
        os.environ["SMS_AUTH_TOKEN"],
        [n for n in (os.environ.get("SMS_NUMBERS") or "").split(",") if n],
        Path(data_dir) if data_dir else None,
    )
    twilio.inbound_url = os.environ.get("SMS_INBOUND_URL") or None
    uvicorn.run(create_app(twilio), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
