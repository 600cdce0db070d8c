"""All configuration, from UPPER_CASE environment variables (or a .env file)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activities.ledger.anchor import DEVELOPMENT_KEY as DEV_ANCHOR_KEY
from workers.codec import Keyring
from workflows.care.calendar import BusinessCalendar
from workflows.prior_auth.models import PriorAuthPolicy
from workflows.prior_auth.rules import AuthorizationRule, Prerequisite, PrerequisiteKind
from workflows.referral.models import ReferralPolicy
from workflows.triggers.models import DEFAULT_RULES, TriggerRule

# Which orders need prior authorization, and what must be on file first (PRIOR_AUTH_RULES, JSON).
# A payer's own row (payer: its Organization id) wins over the any-payer row ("*").
DEFAULT_PRIOR_AUTH_RULES = [
    # MRI lumbar spine without contrast: recent notes, six weeks of conservative therapy, coverage.
    AuthorizationRule(
        service="72148",
        prerequisites=[
            Prerequisite(kind=PrerequisiteKind.CLINICAL_NOTES, within_days=30),
            Prerequisite(kind=PrerequisiteKind.CONSERVATIVE_THERAPY, weeks=6),
            Prerequisite(kind=PrerequisiteKind.COVERAGE),
        ],
    ),
    # CT abdomen and pelvis with contrast: a creatinine (LOINC 2160-0) within 30 days, coverage.
    AuthorizationRule(
        service="74177",
        prerequisites=[
            Prerequisite(kind=PrerequisiteKind.LAB, within_days=30, codes=["2160-0"]),
            Prerequisite(kind=PrerequisiteKind.COVERAGE),
        ],
    ),
]

DEV_SECRET = "followthrough-development-secret-change-me"
DEV_NOTIFICATION_TOKEN = "followthrough-development-notification-token"
DEV_PAYER_NOTIFICATION_TOKEN = "followthrough-development-payer-notification-token"
DEV_METRICS_SCRAPE_TOKEN = "followthrough-development-metrics-scrape-token"
DEV_CSRF_SECRET = "followthrough-development-csrf-key-change-me"
DEV_ADDRESS_KEY = "followthrough-development-address-key-change-me"
# Development only: production refuses it (see Settings.keyring).
DEV_PAYLOAD_KEY_ID = "dev-1"
DEV_PAYLOAD_KEY = "ZGV2ZWxvcG1lbnQta2V5LW5vdC1mb3ItcmVhbC1waGk="


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".data")

    # Temporal: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and the TEMPORAL_TLS_*
    # variables are read by Temporal's own environment configuration (see workers/client.py).
    temporal_task_queue: str = "followthrough"
    temporal_ui_port: int = 8233
    # Cases the worker keeps in memory (about 0.17 MB each, beyond its ~170 MB); any other case is
    # replayed from its history on its next event, a few milliseconds more for that event.
    max_cached_workflows: int = 500
    # Slots and pollers per worker: the SDK's defaults, with which the bench measured.
    max_concurrent_workflow_tasks: int = 100
    max_concurrent_activities: int = 100
    workflow_task_pollers: int = 5
    activity_task_pollers: int = 5
    # EHR calls per second across every worker of the deployment (Temporal enforces it on the EHR
    # task queue): keep under what the EHR's owner allows; 0 means no limit.
    ehr_activities_per_second: float = 20
    # Where the worker serves Temporal SDK metrics for Prometheus, e.g. 127.0.0.1:9464.
    worker_metrics_address: str | None = None
    # On SIGTERM the worker stops polling and lets running activities finish for this long
    # before it cancels them (they are then retried on another worker).
    worker_shutdown_grace_seconds: float = 30

    database_url: str = "sqlite:///.data/followthrough.db"
    # Signs each case's ledger head (workers) and checks it (API); keep it out of the database.
    ledger_anchor_key: str = DEV_ANCHOR_KEY

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # On SIGTERM the API stops accepting connections and lets requests under way finish for
    # this long before it cancels them.
    api_shutdown_grace_seconds: int = 30

    jwt_secret: str = DEV_SECRET
    jwt_issuer: str = "followthrough"
    jwt_ttl_minutes: int = 12 * 60  # tokens minted by `followthrough token`
    # Web UI sessions: short-lived, renewed while in use, never longer than the maximum; signing
    # out ends them (the cookie is gone; a copy of it expires within the session's minutes).
    session_minutes: int = 15
    session_max_hours: int = 12
    # Signs the CSRF tokens and the sign-in under way: a key of its own, not the JWT secret.
    csrf_secret: str = DEV_CSRF_SECRET
    # Where browsers reach the API (e.g. https://followthrough.example.org); the sign-in
    # callback is {PUBLIC_URL}/signin/callback. Unset: the address of the request.
    public_url: str = ""

    # Sign-in with OpenID Connect (off while OIDC_ISSUER is empty): the provider's issuer URL,
    # this app's client registration, and the ID token claims holding the user, role and team.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid profile"
    oidc_user_claim: str = "sub"
    oidc_role_claim: str = "role"
    oidc_team_claim: str = "team"
    # The provider's access tokens for this audience are accepted as API bearer tokens.
    oidc_api_audience: str = ""

    clinic_timezone: str = "America/New_York"
    clinic_holidays: list[date] = []
    default_team: str = "referrals"
    # Order codes (category, code or performer type) that route to a team; the rest go to the
    # default team. SNOMED 363679005 is imaging, 394579002 cardiology.
    team_routes: dict[str, str] = {"363679005": "imaging", "394579002": "cardiology"}
    referral_policy: ReferralPolicy = ReferralPolicy()
    # Prior authorization: the rules table, the pathway's windows and the team that owns it.
    prior_auth_rules: list[AuthorizationRule] = DEFAULT_PRIOR_AUTH_RULES
    prior_auth_policy: PriorAuthPolicy = PriorAuthPolicy()
    prior_auth_team: str = "authorizations"

    # The EHR, over FHIR R4: the sandbox by default; any R4 server by its base URL and auth
    # ("none", "bearer" with FHIR_BEARER_TOKEN, or "smart" Backend Services with SMART_*).
    fhir_base_url: str = "http://127.0.0.1:8103/fhir/R4"
    fhir_auth: Literal["none", "bearer", "smart"] = "none"
    fhir_bearer_token: str = ""
    fhir_timeout_seconds: float = 20
    smart_token_url: str = ""
    smart_client_id: str = ""
    smart_private_key_file: Path | None = None  # PEM, RSA: the client assertion is RS384
    smart_key_id: str = ""
    smart_scope: str = "system/*.rs system/Task.cu"
    ehr_sandbox_port: int = 8103  # `followthrough dev` starts the sandbox here
    ehr_verification: bool = True  # new cases verify claims in the EHR and mirror a Task there
    ehr_detection_minutes: int = 5  # how often the EHR is searched for new orders; 0: never
    ehr_order_categories: list[str] = []  # ServiceRequest categories detection takes; [] all
    fhir_notification_token: str = DEV_NOTIFICATION_TOKEN  # the EHR's credential for the webhook
    # Prometheus's credential for GET /metrics (besides an auditor's or admin's token); outside
    # development only one of your own (32+ characters) is accepted.
    metrics_scrape_token: str = DEV_METRICS_SCRAPE_TOKEN

    # The payer, over Da Vinci PAS: its FHIR base URL (unset: no prior authorization requests
    # go out), and the credential it sends with its notifications to /api/v1/payer/notifications.
    payer_base_url: str | None = None
    payer_timeout_seconds: float = 20
    payer_notification_token: str = DEV_PAYER_NOTIFICATION_TOKEN
    payer_sandbox_port: int = 8105  # `followthrough dev` starts the payer sandbox here

    # Messages to patients (workflows/care/outreach.py, activities/messaging/). A channel is
    # used when it is configured; the portal outbox (in the app database) always is.
    # Who the messages say they are from, and the number a patient calls back.
    outreach_sender_name: str = "Followthrough Clinic"
    outreach_callback_phone: str = "555-0100"
    # New referral cases run their outreach cadence by themselves (off: staff record it by hand).
    outreach_enabled: bool = True
    # SMS over the Twilio Messages API: unset TWILIO_ACCOUNT_SID means no SMS. Each sender
    # number holds one conversation per patient, so replies reach the case that wrote; give
    # several numbers (TWILIO_FROM_NUMBERS, E.164) for patients with several open cases.
    twilio_base_url: str = "https://api.twilio.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_numbers: list[str] = []
    twilio_timeout_seconds: float = 15
    sms_sandbox_port: int = 8107  # `followthrough dev` starts the Twilio-protocol sandbox here
    # Email over SMTP: unset SMTP_HOST means no email. SMTP_SECURITY is "starttls" (upgrade
    # on port 587), "tls" (implicit TLS, port 465) or "none" (loopback development only).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_ca_file: Path | None = None  # a CA bundle to trust beyond the system's
    smtp_timeout_seconds: float = 15
    mail_from: str = "care-team@followthrough.example.org"
    mail_sandbox_port: int = 8125  # `followthrough dev` starts a local SMTP server here
    # Patients' addresses are kept only as HMACs under this key (to match replies and opt-outs);
    # production with SMS or email needs one of its own (32+ characters). A new key forgets
    # the consent on file.
    messaging_address_key: str = DEV_ADDRESS_KEY

    # Decision triggers: thresholds on the care metrics, evaluated on a Temporal Schedule.
    trigger_rules: list[TriggerRule] = DEFAULT_RULES
    trigger_every_minutes: int = 5

    log_level: str = "INFO"
    log_json: bool = True

    # --- PHI: payload encryption, the codec server, the patient panel ---
    # Temporal payloads are encrypted (AES-256-GCM) under PAYLOAD_KEY_ID; every key in
    # PAYLOAD_KEYS (id -> base64 of 32 bytes) still decrypts, so keys rotate under running cases.
    payload_keys: dict[str, str] = {DEV_PAYLOAD_KEY_ID: DEV_PAYLOAD_KEY}
    payload_key_id: str = DEV_PAYLOAD_KEY_ID
    payload_encryption: bool = True  # off only to show what it protects; production refuses
    # The Temporal Web UI allowed to call the codec server (CORS); empty: the dev server's UI.
    temporal_ui_origin: str = ""
    # The patient's identity, read from the EHR when a page shows it; queue names kept briefly.
    patient_timeout_seconds: float = 3
    patient_cache_seconds: int = 120

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment != "production":
            return self
        secrets = [
            ("JWT_SECRET", self.jwt_secret, DEV_SECRET),
            ("LEDGER_ANCHOR_KEY", self.ledger_anchor_key, DEV_ANCHOR_KEY),
            ("CSRF_SECRET", self.csrf_secret, DEV_CSRF_SECRET),
        ]
        if self.twilio_account_sid or self.smtp_host:  # addresses are hashed for SMS and email
            secrets.append(("MESSAGING_ADDRESS_KEY", self.messaging_address_key, DEV_ADDRESS_KEY))
        for name, value, default in secrets:
            if value == default or len(value) < 32:
                raise ValueError(
                    f"{name} must be a secret of your own (32+ characters) in production"
                )
        if self.csrf_secret == self.jwt_secret:
            raise ValueError("CSRF_SECRET must differ from JWT_SECRET")
        return self

    @property
    def keyring(self) -> Keyring:
        """The payload keys. Checked when a process connects to Temporal rather than when the
        settings load, so tools that never touch payloads run without them."""
        if self.environment == "production" and (
            not self.payload_encryption or DEV_PAYLOAD_KEY in self.payload_keys.values()
        ):
            raise ValueError(
                "Production encrypts Temporal payloads with keys of your own: set PAYLOAD_KEYS "
                "and PAYLOAD_KEY_ID, without the development key, and leave PAYLOAD_ENCRYPTION on"
            )
        return Keyring.from_base64(self.payload_keys, self.payload_key_id)

    @property
    def codec_origin(self) -> str:
        return self.temporal_ui_origin or f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(timezone=self.clinic_timezone, holidays=self.clinic_holidays)


@lru_cache
def get_settings() -> Settings:
    return Settings()
