"""The payroll demo: Spyne services hosted behind the relay, called with zeep."""
