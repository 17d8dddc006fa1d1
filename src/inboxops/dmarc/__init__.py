"""DMARC: aggregate (rua), failure (ruf) and SMTP TLS reports, from files or an IMAP mailbox."""
