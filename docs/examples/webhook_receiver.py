"""A webhook receiver to try paycore with: verifies each delivery, skips duplicates, prints
the event and answers 204.

    PAYCORE_WEBHOOK_SECRET=whsec_... python docs/examples/webhook_receiver.py [port]

It listens on http://127.0.0.1:8000/webhooks by default (port 0 picks a free one). Needs only
the `standardwebhooks` package (pip install standardwebhooks). See docs/webhooks.md.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

webhook = Webhook(os.environ["PAYCORE_WEBHOOK_SECRET"])
seen: set[str] = set()  # the webhook-id of every event handled (keep them in your database)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            event = webhook.verify(body, dict(self.headers))
        except (WebhookVerificationError, ValueError):  # unsigned, forged, stale or garbled
            self.send_response(401)
            self.end_headers()
            return
        webhook_id = self.headers["webhook-id"]  # the event id, the same on every retry
        if webhook_id not in seen:  # delivery is at least once: act on each event once
            seen.add(webhook_id)
            print(event["type"], webhook_id, json.dumps(event["data"]["object"]), flush=True)
        self.send_response(204)  # any 2xx within 10 s; anything else is retried
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per event is enough


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = HTTPServer(("127.0.0.1", port), Receiver)  # one request at a time: no races
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/webhooks", flush=True)
    server.serve_forever()
