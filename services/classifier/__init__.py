"""The classifier: Switchyard's front door (DESIGN §1 S1, §2, §7).

It authenticates tenants' bearer tokens against its tenant registry, validates and
classifies task specs (category → eligibility group and priority class), splits
"N items in batches of b" requests, and enqueues each submit as one batch on the
scheduler; reads, watches, cancels and explanations are forwarded on the caller's tenant.

Entry points: `app.ClassifierApp(config.ClassifierConfig(...))`, `python -m
services.classifier`, and `admin.seed_demo_tenants(database_url)` / `python -m
services.classifier.admin`.
"""
