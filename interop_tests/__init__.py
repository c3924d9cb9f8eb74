"""End-to-end tests against peers nobody on this team wrote (see README.md)."""
