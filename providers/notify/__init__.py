"""Confirmations and reminders: SMS (Twilio Messages) and e-mail (SMTP)."""
