"""Messages to patients: SMS (Twilio), email (SMTP) and the portal outbox, one module each."""
