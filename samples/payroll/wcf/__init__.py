"""The payroll demo's WCF client (C#, Mono): ``python -m samples.payroll.wcf`` (``make demo-wcf``)."""
