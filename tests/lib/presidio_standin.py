#!/usr/bin/python3
"""A stand-in for Microsoft Presidio's analyzer service (presidio-analyzer cannot be installed here).

It speaks the analyzer's REST API as the real one does:

  GET  /health                      -> 200 "Presidio Analyzer service is up"
  GET  /supportedentities?language=en -> 200 ["CREDIT_CARD", ...]
  POST /analyze  {"text": str, "language": "en", "entities"?: [str], "score_threshold"?: float,
                  "correlation_id"?, "return_decision_process"?, "ad_hoc_recognizers"?, "context"?}
              -> 200 [{"entity_type", "start", "end", "score", "analysis_explanation", "recognition_metadata"}]
                 start/end are character offsets (Python str indices: code points) into text;
              -> 400 {"error": "..."} when text or language is missing, or the language is not supported.

Its recognizers are small (regexes plus a list of person names and places), enough for tests that need
entities the built-in detectors do not have (PERSON, LOCATION) and Presidio's own offsets.

  presidio_standin.py PORT [--delay SECONDS] [--status CODE] [--garbage]

--delay answers every /analyze after SECONDS (a timeout test), --status answers /analyze with that HTTP
status, --garbage answers 200 with a body that is not a list of findings. Requests are logged to stderr.
"""
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PERSONS = ["Alice Jones", "Bob Smith", "Carol White", "Ada Lindqvist"]
PLACES = ["Berlin", "London", "Rome", "Paris"]
RECOGNIZERS = [
    ("EMAIL_ADDRESS", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), 1.0),
    ("US_SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), 0.85),
    ("PHONE_NUMBER", re.compile(r"(?<!\w)\+\d{1,3}(?: \d{1,4}){2,4}\b"), 0.75),
    ("CREDIT_CARD", re.compile(r"\b(?:\d[ -]?){13,19}\b"), 1.0),
    ("PERSON", re.compile("|".join(re.escape(p) for p in PERSONS)), 0.85),
    ("LOCATION", re.compile(r"\b(?:" + "|".join(PLACES) + r")\b"), 0.85),
]
SUPPORTED = sorted({r[0] for r in RECOGNIZERS})
OPTS = {"delay": 0.0, "status": 200, "garbage": False}


def luhn(digits):
    s, alt = 0, False
    for d in reversed(digits):
        n = int(d)
        if alt:
            n *= 2
            if n > 9:
                n -= 9
        s += n
        alt = not alt
    return s % 10 == 0


def analyze(text, entities, threshold):
    out = []
    for etype, rx, score in RECOGNIZERS:
        if entities and etype not in entities:
            continue
        if score < threshold:
            continue
        for m in rx.finditer(text):
            if etype == "CREDIT_CARD":
                digits = re.sub(r"\D", "", m.group(0))
                if not (13 <= len(digits) <= 19 and luhn(digits)):
                    continue
            out.append({"entity_type": etype, "start": m.start(), "end": m.end(), "score": score,
                        "analysis_explanation": None,
                        "recognition_metadata": {"recognizer_name": etype.title().replace("_", "") + "Recognizer",
                                                 "recognizer_identifier": etype.lower() + "_0"}})
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("presidio-standin: " + (fmt % args) + "\n")

    def _send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body) if ctype == "application/json"
                                                     else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._send(200, "Presidio Analyzer service is up", "text/plain")
        elif self.path.startswith("/supportedentities"):
            self._send(200, SUPPORTED)
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        if self.path != "/analyze":
            self._send(404, {"error": "not found"})
            return
        if OPTS["delay"]:
            time.sleep(OPTS["delay"])
        if OPTS["status"] != 200:
            self._send(OPTS["status"], {"error": "the analyzer failed"})
            return
        if OPTS["garbage"]:
            self._send(200, {"unexpected": "object"})
            return
        try:
            req = json.loads(raw)
        except ValueError:
            self._send(400, {"error": "Failed to parse the request"})
            return
        text, lang = req.get("text"), req.get("language")
        if not text and text != "":
            self._send(400, {"error": "No text provided"})
            return
        if not lang:
            self._send(400, {"error": "No language provided"})
            return
        if lang != "en":
            self._send(400, {"error": "No matching recognizers were found to serve the request."})
            return
        self._send(200, analyze(text, req.get("entities"), float(req.get("score_threshold") or 0)))


def main():
    port = int(sys.argv[1])
    args = sys.argv[2:]
    while args:
        a = args.pop(0)
        if a == "--delay":
            OPTS["delay"] = float(args.pop(0))
        elif a == "--status":
            OPTS["status"] = int(args.pop(0))
        elif a == "--garbage":
            OPTS["garbage"] = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
