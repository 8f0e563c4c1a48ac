//! `sentinel --help`: the manual, laid out as a man page and grouped as curl's options are.

pub(crate) const HELP: &str = "\
NAME
    sentinel - fetch URLs like curl, one or ten thousand, with retries, per-host circuit
    breakers and N parallel workers

SYNOPSIS
    sentinel [OPTIONS] URL                  one URL: the body to standard output, as curl
    sentinel [OPTIONS] URL URL...           many URLs: one JSON line each, in order
    sentinel [OPTIONS] [--input FILE] < urls.txt

DESCRIPTION
    With one URL on the command line, sentinel behaves as curl does: the body goes to
    standard output (so `sentinel https://... | jq` works), errors to standard error as
    'sentinel: (CODE) ...', and the exit status is curl's code for the failure.

    With more URLs, or URLs read one a line from --input FILE or standard input (blank lines
    and lines starting with '#' are skipped), N workers fetch them and standard output gets
    one JSON object per URL, in input order, then a statistics table on standard error.

    Unlike curl, sentinel follows redirects by default (-L is accepted and changes nothing),
    retries transient failures (3 attempts by default), keeps one overall deadline per URL,
    and never turns certificate verification off. A URL without a scheme gets http://.

INPUT
        --input FILE           Read URLs from FILE, one a line, after any on the command
                               line; '-' is standard input (the default with no URL given)
        --json-lines           JSON lines even for one URL

REQUEST
    -X, --request METHOD       Method to use [default: GET; POST with a body; HEAD with -I]
    -H, --header 'NAME: VALUE' Add a header (repeatable). 'NAME:' removes a header sentinel
                               would add (Content-Type, Accept, User-Agent, Authorization);
                               'NAME;' sends it empty
    -d, --data DATA            Send DATA as a POST body (application/x-www-form-urlencoded);
                               '@FILE' reads FILE without CR and LF, '@-' standard input;
                               repeated -d are joined with '&'
        --data-raw DATA        As -d, '@' taken literally
        --data-binary DATA     As -d, '@FILE' read byte for byte
        --json DATA            As --data-binary, with Content-Type and Accept set to
                               application/json; repeated --json are concatenated
    -A, --user-agent NAME      User-Agent header [default: http-sentinel/VERSION]
    -I, --head                 Send HEAD; with one URL, print the response head

AUTHENTICATION
    -u, --user USER:PASSWORD   HTTP Basic credentials (sentinel never prompts)
        --oauth2-bearer TOKEN  Authorization: Bearer TOKEN
    Credentials are never printed, and are dropped when a redirect leaves the origin.

OUTPUT
    -o, --output FILE          Write the body to FILE (one URL only; '-' is standard output)
    -O, --remote-name          Save each body under its URL's last path segment
        --output-dir DIR       Put -o and -O files in DIR; with many URLs, implies -O. A name
                               taken twice in one run gets '.LINE' appended
    -D, --dump-header FILE     Write the response head to FILE ('-' is standard output, one
                               URL only); with many URLs, every head in input order
    -i, --include              With one URL, the response head before the body
    -w, --write-out FORMAT     After each URL, print FORMAT with the variables below; for
                               many URLs it replaces the JSON line. '@FILE' reads FORMAT from
                               FILE. -w followed by a plain number is --workers (as before)
    -s, --silent               No error messages, progress or statistics
    -S, --show-error           With -s, still print error messages
    -f, --fail                 A status of 400 or above fails the URL with exit 22 and
                               nothing is written for its body
        --fail-with-body       As --fail, but the body is written
        --stats MODE           Statistics on standard error at the end: table, json or none
                               [default: table for many URLs, none for one]
        --progress             Always draw the progress line on standard error
        --no-progress          Never draw it [default: only while standard error is a
                               terminal and standard output is not]
    -q, --quiet                Neither progress nor statistics (--stats none --no-progress)

REDIRECTS AND LIMITS
    -L, --location             Accepted for curl's sake: redirects are always followed
        --max-redirs N         Follow at most N redirects (exit 47 beyond); 0 makes any
                               redirect an error, -1 is no limit [default: 10]
        --max-filesize BYTES   Fail a body larger than BYTES with exit 63; k, M, G suffixes
                               (1024-based) [default: no limit; SENTINEL_BODY_LIMIT applies]

TIMEOUTS AND RETRIES
    -m, --max-time SECONDS     Overall deadline per URL: every attempt, backoff and the body
                               [default: 30]; fractions allowed. --deadline-ms MS is the same
        --connect-timeout SECONDS
                               Deadline for one TCP (and TLS) connect [default: 10];
                               --connect-timeout-ms MS is the same
        --retry N              Retry transient failures up to N times (N+1 attempts): connect
                               failures, timeouts before sending, 429, 500, 502, 503, 504
                               (Retry-After honoured) [default: 2]; 0 disables
        --retries N            Attempts per URL, the first included (--retry N-1); also
                               spelled --attempts
        --no-breaker           Never open a host's circuit breaker, however often it fails

TLS AND NETWORK
        --cacert FILE          Also trust the CA certificate(s) in FILE (PEM or DER)
    -k, --insecure             Refused: certificate verification cannot be turned off
        --resolve HOST:PORT:ADDR[,ADDR...]
                               Connect to ADDR for HOST:PORT, http and https (repeatable);
                               the certificate is still checked against HOST
    -x, --proxy [SCHEME://]HOST:PORT
                               Send requests through this proxy (http:// when no scheme)
        --compressed           Accepted: gzip responses are always asked for and decoded

PARALLEL
    -w, --workers N            Worker threads, each with its own client [default: 8, max 1024]
    -Z, --parallel             Accepted for curl's sake: many URLs are always fetched in
                               parallel
        --parallel-max N       The same as --workers N

    -h, --help                 This manual
    -V, --version              The version

WRITE-OUT VARIABLES (-w)
    %{http_code}      final status, 000 without a response (%{response_code} too)
    %{time_total}     seconds taken, body included, e.g. 0.012345
    %{size_download}  body bytes received
    %{num_redirects}  redirects followed
    %{num_retries}    attempts beyond the first, at each hop of the redirect chain
    %{url_effective}  the URL that answered last
    %{url}            the URL as given
    %{remote_ip}      the address connected to (the proxy's, through an HTTP proxy)
    %{content_type}   the Content-Type of the response
    %{method}         the method sent
    %{exitcode}       this URL's exit code
    %{errormsg}       what went wrong, empty when nothing did
    %{json}           all of the above as one JSON object
    %% is a percent sign; \\n, \\r, \\t and \\\\ are escapes. Credentials in URLs show as ***.

JSON LINES
    One object per URL, in input order:
      {\"line\":1,\"url\":\"http://example.com/\",\"status\":200,\"bytes\":1256,\"attempts\":1,
       \"retries\":0,\"redirects\":0,\"ms\":42,\"exit\":0,\"error\":null,\"message\":null}
    line        the line's number in the input (1-based; skipped lines count); URLs given on
                the command line come first
    url         the URL as given, any user:password@ replaced by ***@
    status      the final HTTP status, also when the call failed after it (a Retry-After
                longer than the deadline, a body cut short, --fail); null without a response
    bytes       body bytes read
    attempts    requests sent (or tried), 0 when the URL was rejected before sending
    retries, redirects
                as %{num_retries} and %{num_redirects}
    ms          time taken, body included
    exit        this URL's exit code (see EXIT STATUS)
    error       null, or the kind of failure: invalid_request, dns, connect, tls, timeout,
                protocol, io, body_too_large, too_many_redirects, redirect_refused,
                circuit_open, retry_after_too_long, http_error (--fail), write, unsupported,
                other
    message     null, or what went wrong, in words
    file        where the body was saved (-O, --output-dir), when it was
    url_effective
                the URL that answered, when a redirect was followed

STATISTICS
    The table lists, per host: calls, the share that ended 2xx/3xx, final 4xx and 5xx,
    errors, attempts, retries, connections opened, the share of connected attempts that
    reused a connection ('-' when none connected) and call latency p50/p99. The last line
    counts URLs: ok (status below 400), with status >= 400, errors, and those never sent
    (a bad URL, an open breaker), which the table counts as calls with no attempt (a URL
    that does not parse under host '-'). --stats json gives the same as one JSON object.

EXIT STATUS
    curl's codes for the same failures. With many URLs, the code of the first URL (in input
    order) that failed; each URL's own code is in its JSON line.
     0  success: every URL got a response (any status unless --fail) and its body
     1  unsupported scheme (not http or https), a redirect refused, or another failure
     2  bad usage (unknown option, missing value, -k, -o with many URLs, ...)
     3  malformed URL
     5  the proxy is unusable
     6  could not resolve the host
     7  could not connect (refused, unreachable, or the host's circuit breaker is open)
     8  the server's reply was not valid HTTP
    18  the connection closed before the whole body arrived
    22  a status of 400 or above, with --fail or --fail-with-body
    23  could not write the output (file, standard output, -D file, -O without a file name)
    26  could not read input (a --data @file, --input FILE, a -w @file)
    28  timed out (connect, response, body or the overall --max-time)
    35  TLS handshake failed (no common protocol version or cipher)
    47  more redirects than --max-redirs
    52  the server closed the connection without replying
    56  the connection failed while receiving
    60  the server's certificate did not verify (untrusted, expired, wrong host)
    63  the body was larger than --max-filesize
    77  the --cacert file could not be read or parsed
    With many URLs and JSON lines, standard output closed early (say, piped into `head`)
    ends the run quietly with status 0; with one URL it is 23, as in curl.

ENVIRONMENT
    The library's SENTINEL_* variables (SENTINEL_DEADLINE_MS, SENTINEL_CONNECT_TIMEOUT_MS,
    SENTINEL_BODY_LIMIT, ...) apply first; flags override them. HTTP_PROXY and friends are
    ignored: give -x.

EXAMPLES
    sentinel -sS https://api.example.com/items | jq .
    sentinel -f -u alice:secret --json '{\"qty\":1}' https://api.example.com/orders
    sentinel -o page.html -w '%{http_code} %{time_total}\\n' https://example.com/
    sentinel -w 16 --output-dir pages/ < urls.txt > results.jsonl
    sentinel -w 16 -w '%{http_code} %{url}\\n' < urls.txt

SEE ALSO
    curl(1); README.md, section \"From curl to sentinel\".
";
