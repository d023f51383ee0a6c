"""Verifies webhook deliveries with the Standard Webhooks reference library (PyPI
`standardwebhooks`), an implementation this project did not write.

Reads a JSON array on stdin: [{"secret": "whsec_...", "headers": {...}, "body": "..."}, ...].
Each delivery is verified with its secret (Webhook(secret).verify(body, headers), which also
checks the timestamp's freshness); prints how many verified and exits 1 at the first failure,
naming it.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook

deliveries = json.load(sys.stdin)
for i, delivery in enumerate(deliveries):
    try:
        Webhook(delivery["secret"]).verify(delivery["body"], delivery["headers"])
    except Exception as err:  # the library raises WebhookVerificationError
        print(f"delivery {i} ({delivery['headers'].get('webhook-id')}) does not verify: {err!r}")
        sys.exit(1)
print(f"verified {len(deliveries)}")
