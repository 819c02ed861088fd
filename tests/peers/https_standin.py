"""A local HTTPS stand-in for Slack's and PagerDuty's endpoints, for the alert tests.

Usage: python3 https_standin.py CERT KEY STATUS
Serves TLS on 127.0.0.1 (any free port) with CERT/KEY (PEM), answers every POST with STATUS and
{"status": "success"}; prints {"port": N} once listening, then one JSON line per request:
{"method", "path", "content_type", "body"} (body parsed as JSON when it is).
"""
import http.server
import json
import ssl
import sys

cert, key, status = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        print(json.dumps({"method": "POST", "path": self.path,
                          "content_type": self.headers.get("Content-Type"), "body": body}), flush=True)
        out = b'{"status": "success"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(json.dumps({"port": server.server_address[1]}), flush=True)
server.serve_forever()
