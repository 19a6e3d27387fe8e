#!/usr/bin/env python3
"""Write a deterministic sample mailbox into a Dovecot Maildir.

    gen_corpus.py [--seed N] [--scale F] [--no-big] MAILDIR

MAILDIR is a user's Maildir root as Dovecot sees it with
`mail_location = maildir:~/Maildir` (e.g. DIR/mail/alice/Maildir).  Write it
before the user's first login: Dovecot assigns UIDs, UIDVALIDITY and
INTERNALDATE (the file's mtime) when it first scans the folders.

Folders use Dovecot's default Maildir++ layout: INBOX is MAILDIR itself, and
"Archive/2019" is MAILDIR/.Archive.2019, with non-ASCII names in modified
UTF-7 (RFC 3501 5.1.3) as Dovecot keeps them on disk, so that LIST shows
Entwürfe, 日本語/Sub and a&b with their real names under the '/' separator.

The same seed gives the same files, names, flags and mtimes.  The mail is
meant to be awkward the way real mail is: LF and CRLF line ends, 8-bit UTF-8
and Latin-1 bytes in headers and bodies, RFC 2047 words, body lines starting
with "From ", multipart messages with base64 attachments, a message without
a final newline, an empty body, long folded headers, one message of about
1 MB (unless --no-big), and a mix of flags including $Forwarded.
"""

import argparse
import base64
import os
import quopri
import random
import sys
import time

# Folder name (UTF-8, '/'-separated) -> number of messages at scale 1.0.
FOLDERS = [
    ("INBOX", 110),
    ("Sent", 40),
    ("Entwürfe", 8),
    ("Archive", 15),
    ("Archive/2019", 60),
    ("日本語", 12),
    ("日本語/Sub", 10),
    ("a&b", 10),
    ("Empty", 0),
]

# Maildir flag letters (Dovecot: D \Draft, F \Flagged, R \Answered,
# S \Seen, T \Deleted); keyword letters a, b, ... index dovecot-keywords.
KEYWORDS = ["$Forwarded", "$Junk", "Work"]

HOST = "imapsnap-corpus"

PEOPLE = [
    ("Alice Example", "alice@example.org"),
    ("Bob Beispiel", "bob@beispiel.de"),
    ("Jürgen Müller", "juergen@example.de"),
    ("Zoë Ångström", "zoe@example.se"),
    ("山田 太郎", "taro@example.jp"),
    ("Carol", "carol@example.net"),
    ("François Côté", "fcote@example.ca"),
    ("Mailing List", "list@lists.example.com"),
]

SUBJECTS = [
    "Quarterly report",
    "Re: lunch on Friday?",
    "Grüße aus Köln",
    "Fwd: Rechnung Nr. 2019-0042",
    "会議の議事録",
    "Invoice attached",
    "[list] weekly digest",
    "Straße & Brücke — update",
    "Re: Re: Re: the long thread about nothing in particular",
    "Photos",
]

WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
         "eiusmod tempor incididunt ut labore et dolore magna aliqua").split()
WORDS_UTF8 = WORDS + "über straße grüße 日本 ça déjà".split()


def mutf7(name):
    """Encode a Unicode mailbox name in IMAP modified UTF-7."""
    out, run = [], []

    def flush():
        if run:
            raw = "".join(run).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            run.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def rfc2047(text):
    """An encoded-word for text that is not plain ASCII."""
    try:
        text.encode("ascii")
        return text
    except UnicodeEncodeError:
        b64 = base64.b64encode(text.encode("utf-8")).decode("ascii")
        return "=?UTF-8?B?" + b64 + "?="


def rfc5322_date(ts, tz_minutes):
    t = time.gmtime(ts + tz_minutes * 60)
    sign = "+" if tz_minutes >= 0 else "-"
    tz = "%s%02d%02d" % (sign, abs(tz_minutes) // 60, abs(tz_minutes) % 60)
    return time.strftime("%a, %d %b %Y %H:%M:%S ", t) + tz


def qp(text):
    """Quoted-printable, with CRLF line ends."""
    enc = quopri.encodestring(text.encode("utf-8")).decode("ascii")
    return enc.replace("\n", "\r\n").rstrip("\r\n")


def paragraph(rng, n, words=WORDS):
    return " ".join(rng.choice(words) for _ in range(n))


def wrap(text, width=72):
    lines, line = [], ""
    for w in text.split():
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = (line + " " + w) if line else w
    if line:
        lines.append(line)
    return lines


def make_message(rng, folder, n, ts, kind):
    """Return the raw bytes of message number n of `folder`."""
    sender = rng.choice(PEOPLE)
    rcpt = rng.choice([p for p in PEOPLE if p != sender])
    subject = rng.choice(SUBJECTS)
    tz = rng.choice([0, 60, 120, -300, 540, 330])
    msgid = "<%d.%d.%s@%s>" % (ts, n, folder.encode("utf-8").hex()[:12], HOST)
    eol = "\r\n" if kind in ("crlf", "multipart", "alternative") else "\n"
    eight_bit_headers = kind in ("utf8hdr", "latin1")
    subj = "%s [%s #%d]" % (subject, folder, n)

    def addr(p):
        if eight_bit_headers or p[0].isascii():
            return '"%s" <%s>' % p
        return "%s <%s>" % (rfc2047(p[0]), p[1])

    hdr = [
        "Return-Path: <%s>" % sender[1],
        "Received: from mx.example.org (mx.example.org [192.0.2.%d])"
        % (n % 250 + 1),
        "\tby %s with ESMTPS id %08x;" % (HOST, rng.getrandbits(32)),
        "\t%s" % rfc5322_date(ts, tz),
        "Date: %s" % rfc5322_date(ts, tz),
        "From: %s" % addr(sender),
        "To: %s" % addr(rcpt),
        "Subject: %s" % subj if eight_bit_headers else
        "Subject: %s" % rfc2047(subj),
        "Message-ID: %s" % msgid,
    ]
    if kind == "longhdr":
        refs = " ".join("<%d.ref%d@%s>" % (ts - i, i, HOST) for i in range(12))
        hdr.append("References: " + "\n\t".join(wrap(refs, 70)))
    if kind == "list":
        hdr.append("List-Id: Weekly digest <list.lists.example.com>")
        hdr.append("X-Spam-Score: %0.1f" % (rng.random() * 5))

    body_lines = []
    mime = ["MIME-Version: 1.0"]
    if kind in ("plain", "crlf", "longhdr", "list", "noeol", "fromline"):
        mime.append("Content-Type: text/plain; charset=us-ascii")
        mime.append("Content-Transfer-Encoding: 7bit")
        for _ in range(rng.randint(1, 6)):
            body_lines += wrap(paragraph(rng, rng.randint(5, 60)))
            body_lines.append("")
        if kind == "fromline":
            body_lines += ["From the desk of the editor: a line that an mbox",
                           "writer must quote.",
                           ">From here on, an already quoted line.",
                           "From ", ""]
        text = eol.join(body_lines)
        if kind != "noeol":
            text += eol
        else:
            text = text.rstrip("\n")
        body = text.encode("ascii")
    elif kind == "utf8hdr":
        mime.append("Content-Type: text/plain; charset=utf-8")
        mime.append("Content-Transfer-Encoding: 8bit")
        body = ("Hallo %s,\n\nGrüße, Ça va? 日本語のテキスト。\n%s\n"
                % (rcpt[0], paragraph(rng, 30, WORDS_UTF8))).encode("utf-8")
    elif kind == "latin1":
        mime.append("Content-Type: text/plain; charset=iso-8859-1")
        mime.append("Content-Transfer-Encoding: 8bit")
        body = ("Sehr geehrte Damen und Herren,\n\nanbei die Übersicht. "
                "Größe: %d\n" % rng.randint(1, 999)).encode("latin-1")
        # Latin-1 also in one header: bytes that are not valid UTF-8.
        head = (eol.join(hdr + mime) + eol).encode("utf-8")
        head += b"X-Comment: Gr\xfc\xdfe aus M\xfcnchen" + eol.encode()
        return head + eol.encode() + body
    elif kind == "empty":
        mime.append("Content-Type: text/plain; charset=us-ascii")
        body = b""
    elif kind in ("multipart", "big"):
        boundary = "=_imapsnap_%016x" % rng.getrandbits(64)
        mime.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        size = 1_000_000 if kind == "big" else rng.randint(500, 40_000)
        blob = rng.randbytes(size)
        b64 = base64.b64encode(blob).decode("ascii")
        b64lines = [b64[i:i + 76] for i in range(0, len(b64), 76)]
        fname = rng.choice(["report.pdf", "photo.jpg", "Übersicht.xlsx",
                            "data.bin"])
        parts = [
            "This is a multi-part message in MIME format.",
            "",
            "--" + boundary,
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            "Please find the file attached. Grüße.",
            "",
            "--" + boundary,
            "Content-Type: application/octet-stream; name=\"%s\"" % rfc2047(
                fname),
            "Content-Disposition: attachment; filename*=UTF-8''%s" % "".join(
                c if c.isascii() else "".join("%%%02X" % b for b in
                                              c.encode("utf-8"))
                for c in fname),
            "Content-Transfer-Encoding: base64",
            "",
        ] + b64lines + ["", "--" + boundary + "--", ""]
        body = eol.join(parts).encode("utf-8")
    elif kind == "alternative":
        boundary = "=_alt_%016x" % rng.getrandbits(64)
        mime.append('Content-Type: multipart/alternative; boundary="%s"'
                    % boundary)
        text = "\n".join(wrap(paragraph(rng, 40, WORDS_UTF8))) + "\n"
        html = '<html><body><p style="color: red">%s</p></body></html>\n' % (
            text.replace("\n", " "))
        parts = [
            "--" + boundary,
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            qp(text),
            "--" + boundary,
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            qp(html),
            "--" + boundary + "--",
            "",
        ]
        body = eol.join(parts).encode("utf-8")
    else:
        raise ValueError(kind)

    head = "\n".join(hdr + mime) + "\n\n"
    if eol == "\r\n":
        head = head.replace("\n", "\r\n")
    return head.encode("utf-8") + body


KINDS = ["plain"] * 6 + ["crlf"] * 3 + ["utf8hdr"] * 2 + [
    "multipart", "multipart", "alternative", "longhdr", "list", "fromline",
    "latin1", "noeol", "empty"]


def folder_dir(maildir, name):
    if name == "INBOX":
        return maildir
    return os.path.join(maildir, "." + ".".join(
        mutf7(c) for c in name.split("/")))


def write_folder(maildir, name, count, rng, t0, t1, big):
    d = folder_dir(maildir, name)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    if d != maildir:
        open(os.path.join(d, "maildirfolder"), "w").close()
    with open(os.path.join(d, "dovecot-keywords"), "w") as f:
        for i, kw in enumerate(KEYWORDS):
            f.write("%d %s\n" % (i, kw))
    times = sorted(rng.randint(t0, t1) for _ in range(count))
    for n, ts in enumerate(times, 1):
        kind = "big" if big and n == count // 2 else rng.choice(KINDS)
        data = make_message(rng, name, n, ts, kind)
        base = "%d.M%dP%d.%s" % (ts, n, 1000 + n, HOST)
        if rng.random() < 0.08:
            path = os.path.join(d, "new", base)  # unseen, \Recent
        else:
            flags = set()
            if rng.random() < 0.7:
                flags.add("S")
            if rng.random() < 0.15:
                flags.add("F")
            if rng.random() < 0.2:
                flags.add("R")
            if name == "Entwürfe" or rng.random() < 0.03:
                flags.add("D")
            if rng.random() < 0.03:
                flags.add("T")
            if rng.random() < 0.1:
                flags.add("a")  # $Forwarded
            if rng.random() < 0.05:
                flags.add("c")  # Work
            path = os.path.join(d, "cur", base + ":2," + "".join(
                sorted(flags)))
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (ts, ts))
    return count


def write_corpus(maildir, seed=1, scale=1.0, big=True):
    """Write the corpus below `maildir`; returns {folder name: count}."""
    rng = random.Random(seed)
    t0, t1 = 1420070400, 1704067199  # 2015-01-01 .. 2023-12-31 UTC
    counts = {}
    for name, n in FOLDERS:
        count = int(round(n * scale)) if n else 0
        if n and count == 0:
            count = 1
        lo, hi = (1546300800, 1577836799) if name == "Archive/2019" else (
            t0, t1)
        counts[name] = write_folder(maildir, name, count, rng, lo, hi,
                                    big and name == "Archive/2019")
    with open(os.path.join(maildir, "subscriptions"), "w") as f:
        for name, _ in FOLDERS:
            f.write(name + "\n")
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every folder's message count")
    ap.add_argument("--no-big", action="store_true",
                    help="leave out the 1 MB message")
    ap.add_argument("maildir")
    args = ap.parse_args()
    counts = write_corpus(args.maildir, args.seed, args.scale,
                          not args.no_big)
    total = sum(counts.values())
    print("%d messages in %d folders under %s" % (total, len(counts),
                                                  args.maildir))


if __name__ == "__main__":
    sys.exit(main())
