#!/usr/bin/env python3
"""A webhook receiver for tests/notify.sh: notify_receiver.py PORT MODE DIR.

MODE hang: writes DIR/hang-started on the first POST and answers only once
DIR/release exists (then writes DIR/hang-ended). MODE flaky: answers 500 to
the first POST of each event id, 200 after; every 200 appends the event id to
DIR/flaky.log. Writes DIR/<mode>.ready when listening.
"""
import http.server, os, sys, time

port, mode, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
seen = set()

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        event_id = self.headers.get("X-Backstop-Event-Id", "")
        if mode == "hang":
            open(os.path.join(d, "hang-started"), "a").write(event_id + "\n")
            while not os.path.exists(os.path.join(d, "release")):
                time.sleep(0.05)
            open(os.path.join(d, "hang-ended"), "a").write(event_id + "\n")
            code = 200
        elif event_id not in seen:
            seen.add(event_id)
            code = 500
        else:
            code = 200
            with open(os.path.join(d, "flaky.log"), "a") as f:
                f.write(event_id + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
open(os.path.join(d, mode + ".ready"), "w").close()
server.serve_forever()
