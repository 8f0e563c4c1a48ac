#!/usr/bin/env python3
"""Writes the hand-made seed inputs into fuzz/corpus/<target>/ (named seed-*, so that they are
told apart from what the fuzzer found). Run from anywhere; existing seed files are rewritten."""

import hashlib
import pathlib

CORPUS = pathlib.Path(__file__).resolve().parent.parent / "corpus"

RETRY_AFTER = [
    # The RFC 9110 vectors and the forms servers send.
    "3600", "Mon, 03 Jun 2019 11:30:12 GMT", "Monday, 03-Jun-19 11:30:12 GMT",
    "Mon Jun  3 11:30:12 2019", "\t42 ", "-1", "+1", "1.0", "\u00b2", "", "abc", " \t ", "0",
    "007", "1 2", "18446744073709551615", "99999999999999999999999999",
    "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994", "06 Nov 1994 08:49:37 GMT", "sun, 6 nov 1994 8:49:37 utc",
    "Mon, 3 Jun 2019 12:00:00 UTC", "Mon, 03 Jun 2019 10:59:59 GMT",
    "Mon, 03 Jun 2019 11:00:00 GMT", "Mon, 03 Jun 2019 11:00:01 GMT",
    # Calendar edges.
    "Sat, 29 Feb 2020 12:00:00 GMT", "Fri, 29 Feb 2019 12:00:00 GMT",
    "Thu, 29 Feb 1900 12:00:00 GMT", "Tue, 29 Feb 2000 12:00:00 GMT",
    "Thu, 31 Apr 2020 12:00:00 GMT", "Thu, 31 Dec 2019 23:59:60 GMT",
    "Fri, 31 Dec 9999 23:59:60 GMT", "Sat, 01 Jan 0000 00:00:00 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT", "Tuesday, 01-Jan-69 00:00:00 GMT",
    "Thursday, 01-Jan-70 00:00:00 GMT", "Wed, 31 Dec 1969 23:59:59 GMT",
    # Malformed.
    "Mon, 03 Jun 2019 11:30:12 PST", "Mon, 03 Jun 2019 11:30:12 +0000",
    "Mon, 03 Jun 2019 11:30 GMT", "Mon, 03 Jun 2019 11:30:12:00 GMT",
    "Monday, 03-Jun-19-1 11:30:12 GMT", "Mon Jun  3 11:30:12", "3600\r\n", "36\x0000",
    "Mon, 03 Jun 2019 11:+3:12 GMT", "Funday, 03 Jun 2019 11:30:12 GMT",
]

BASE = "http://a.test:8080/dir/page?x=1"
REDIRECT = [
    # Without a LF the whole input is a Location against the default base.
    "/root", "next", "?y=2", "//b.test/p", "https://c.test/q#frag", "HTTP://D.test/",
    "ftp://a.test/", "file:///etc/passwd", "javascript:alert(1)", "", "#frag",
    BASE + "\n/a\r\nb", BASE + "\n/a\x00b", BASE + "\n  /spaced  ", BASE + "\n\t//evil.test/",
    "http://a.test/x\n../up", "https://a.test/\nhttp://a.test/", "http://A.TEST:80/\n//a.test/",
    "http://a.test\n?q", "http://u:p@a.test/x\n/y", "http://[::1]:8080/\n/z",
    "http://a.test/\nhttp://evil.test\\@a.test/", "http://a.test/\n/\\evil.test",
    "http://a.test/\nhttp:evil.test", "http://a.test/\nhttp://", "http://a.test/\nhttp://:80/",
    "http://a.test/\n%2F%2Fevil.test", "/not-absolute\n/x", "ftp://a.test/x\n/y",
    "https://a.test:443/\n//b.test:443/", "http://a.test/dir/\nhttp://user:pw@b.test/",
    "http://a.test/\nhttps://b.test/p?q=1#f", "http://a.test/\nHtTpS://B.TEST",
]

SEP = "\xff"
HEADERS = [
    ["GET", "http://a.test/", "X-Ok", "fine"],
    ["GET", "http://a.test/", "X-Evil", "a\r\nInjected: 1"],
    ["GET", "http://a.test/", "X-Evil", "a\nb"],
    ["GET", "http://a.test/", "X-Evil", "a\rb"],
    ["GET", "http://a.test/", "X-Evil", "a\x00b"],
    ["GET", "http://a.test/", "X-Bad\r\nName", "v"],
    ["GET", "http://a.test/", "Bad Name", "v"],
    ["GET", "http://a.test/", "Bad:Name", "v"],
    ["GET", "http://a.test/", "", "v"],
    ["GET /x HTTP/1.1\r\nHost: evil", "http://a.test/"],
    ["G\nET", "http://a.test/"],
    ["PURGE", "http://a.test/"],
    [""],
    ["GET", "http://a.test/\r\nX: 1"],
    ["GET", "http://a.test/ space"],
    ["GET", "ftp://a.test/"],
    ["GET", "http:///nohost"],
    ["GET", "HTTPS://A.TEST:443/p?q"],
    ["GET", "http://u:p@a.test/", "Authorization", "Bearer SECRET-TOKEN-123"],
    ["GET", "http://us%40er:p%3Ass@a.test/"],
    ["GET", "http://a.test/", "Authorization", "Bearer SECRET\r\n"],
    ["GET", "http://a.test/", "X-Api-Key", "SECRET-KEY-9", "X-Api-Key"],
    ["GET", "http://a.test/", "X-Api-Key", "SECRET\nKEY", "x-api-key"],
    ["GET", "http://a.test/", "Cookie", "session=SECRETCOOKIE", "Proxy-Authorization",
     "Basic c2VjcmV0", "X Bad"],
    ["GET", "http://a.test/", "X-Tab", "a\tb"],
    ["GET", "http://a.test/", "X-Del", "a\x7fb"],
    ["GET", "http://a.test/", "X-Obs", "caf\u00e9"],
    ["POST", "http://a.test/", "Content-Length", "4611686018427387904"],
]

def response(status, headers=(), body=""):
    head = "HTTP/1.1 " + status + "\r\n" + "".join(h + "\r\n" for h in headers)
    return head + "\r\n" + body

def ok(body="ok"):
    return response("200 OK", ["content-length: %d" % len(body)], body)

def redirect(status, location):
    return response(status, ["location: " + location, "content-length: 0"])

E = "\n~~~\n"
EXCHANGE = [
    ok(),
    "",
    redirect("302 Found", "http://other.test:81/next") + E + ok(),
    redirect("302 Found", "http://other.test/") + E + redirect("302 Found", "http://origin.test/back") + E + ok(),
    redirect("307 Temporary Redirect", "http://other.test/keep") + E + ok(),
    redirect("307 Temporary Redirect", "/same") + E + ok(),
    redirect("301 Moved Permanently", "/next") + E + ok(),
    redirect("303 See Other", "next?x=1") + E + ok(),
    redirect("308 Permanent Redirect", "//other.test/x") + E + ok(),
    redirect("302 Found", "https://origin.test/tls") + E + ok(),
    redirect("302 Found", "https://origin.test:80/tls") + E + ok(),
    redirect("302 Found", "HTTP://ORIGIN.TEST/upper") + E + ok(),
    redirect("302 Found", "http://user:pw@other.test/") + E + ok(),
    redirect("302 Found", "http://user:pw@origin.test/same") + E + ok(),
    redirect("302 Found", "http://origin.test:8080/port") + E + ok(),
    redirect("302 Found", "/a") + E + redirect("302 Found", "/b") + E + redirect("302 Found", "/c") + E + redirect("302 Found", "/d"),
    # Two responses in one connection's bytes: the scripted peer reports the connection closed
    # once it has served them, so the second is never read.
    redirect("302 Found", "/again") + ok(),
    response("302 Found", ["content-length: 0"]),
    response("304 Not Modified"),
    response("300 Multiple Choices", ["location: /x", "content-length: 0"]),
    response("200 OK", ["transfer-encoding: chunked"], "5\r\nhello\r\n0\r\n\r\n"),
    response("200 OK", ["transfer-encoding: chunked"], "zz\r\nhello\r\n"),
    response("200 OK", ["transfer-encoding: chunked"], "ffffffffffffffff\r\nhi"),
    "HTTP/1.1 100 Continue\r\n\r\n" + ok(),
    "HTTP/1.1 abc OK\r\n\r\n", "FOO\r\n\r\n", "HTTP/1.1 999 X\r\n\r\n", "HTTP/1.1 200\r\n\r\n",
    "HTTP/1.1 200 OK\r\n", "HTTP/1.0 200 OK\r\n\r\nbody until eof", "\r\n\r\n",
    response("200 OK", ["content-length: 4611686018427387904"], "short"),
    response("200 OK", ["content-length: 5"], "ab"),
    response("200 OK", ["content-length: 2", "content-length: 3"], "abc"),
    response("200 OK", ["content-encoding: gzip", "content-length: 4"], "\x1f\x8bxx"),
    response("200 OK", ["x-folded: a", " b", "content-length: 0"]),
    response("503 Service Unavailable", ["content-length: 0"]) + E + ok(),
    E.join([response("503 Service Unavailable", ["content-length: 0"])] * 3),
    response("503 Service Unavailable", ["retry-after: 0", "content-length: 0"]) + E + ok(),
    response("503 Service Unavailable", ["retry-after: 3600", "content-length: 0"]),
    response("429 Too Many Requests", ["retry-after: Mon, 03 Jun 2019 11:30:12 GMT", "content-length: 0"]) + E + ok(),
    # Attempts are counted per hop: four attempts for one redirect end in a response...
    E.join([response("503 Service Unavailable", ["content-length: 0"])] * 2 + [redirect("302 Found", "http://other.test/")] + [ok()]),
    # ...and five for one redirect in an error (the second hop's connections are refused).
    response("503 Service Unavailable", ["content-length: 0"]) + E + redirect("302 Found", "http://other.test/"),
    # Pipelined 503s and a redirect on one connection: as above only the first is read, and the
    # retries find every further connection refused.
    (response("503 Service Unavailable", ["content-length: 0"]) * 2 + redirect("302 Found", "/next") + response("503 Service Unavailable", ["content-length: 0"]) * 3),
    # Framing the client must not trust (tests/README.md scenarios 21-23): both framing headers
    # (read by the chunks; the connection is never reused, so the pipelined second response is
    # never read), a Transfer-Encoding not ending in chunked, transfer and content coding chains,
    # floods of interim responses, and final answers in place of 100 Continue.
    response("200 OK", ["content-length: 3", "transfer-encoding: chunked"], "5\r\nhello\r\n0\r\n\r\n") + ok(),
    response("200 OK", ["content-length: 3", "transfer-encoding: chunked"], "5\r\nhello\r\n0\r\n\r\n") + E + ok(),
    response("200 OK", ["transfer-encoding: chunked, gzip"], "5\r\nhello\r\n0\r\n\r\n"),
    response("200 OK", ["transfer-encoding: gzip"], "hello"),
    response("200 OK", ["transfer-encoding: gzip, chunked"], "5\r\nhello\r\n0\r\n\r\n"),
    response("200 OK", ["transfer-encoding: chunked", "transfer-encoding: chunked"], "5\r\nhello\r\n0\r\n\r\n"),
    response("200 OK", ["content-encoding: gzip, gzip", "content-length: 4"], "\x1f\x8bxx"),
    response("200 OK", ["content-encoding: " + ", ".join(["gzip"] * 40), "content-length: 4"], "\x1f\x8bxx"),
    response("200 OK", ["content-encoding: gzip", "content-encoding: identity", "content-length: 2"], "ok"),
    "HTTP/1.1 100 Continue\r\n\r\n" * 5 + ok(),
    "HTTP/1.1 100 Continue\r\n\r\n" * 50 + ok(),
    "HTTP/1.1 102 Processing\n\n" * 6 + ok(),
    response("417 Expectation Failed", ["content-length: 0"]),
    response("417 Expectation Failed") + E + ok(),
    "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
]

def write(target, inputs):
    out = CORPUS / target
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("seed-*"):
        old.unlink()
    for data in inputs:
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
        name = "seed-" + hashlib.sha1(raw).hexdigest()[:16]
        (out / name).write_bytes(raw)

write("retry_after", RETRY_AFTER)
write("redirect_location", REDIRECT)
write("header_validation", [SEP.join(f).encode("utf-8").replace(b"\xc3\xbf", b"\xff") for f in HEADERS])
write("client_exchange", [x.encode("latin-1") for x in EXCHANGE])
