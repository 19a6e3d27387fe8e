#!/usr/bin/env python3
"""Write the benchmark corpus, deterministically, into a Dovecot Maildir.

    gen_corpus.py [--seed N] [--scale F] MAILDIR
    gen_corpus.py [--seed N] --folders N --messages M MAILDIR
    gen_corpus.py --big MB MAILDIR

MAILDIR is a user's Maildir root as Dovecot sees it with
`mail_location = maildir:~/Maildir`.  Write it before the user's first
login: Dovecot assigns UIDs and UIDVALIDITY when it first scans the folders,
and takes INTERNALDATE from each file's mtime.

The default corpus is 5,320 messages and 72 MB in seven folders (one of
them empty), sized the way a mailbox is: most messages are a few KB of
headers and text, a fifth carry an HTML alternative, and one in ten has a
base64 attachment whose size follows a log-normal law, so a long tail
reaches several hundred KB.  Some text bodies have lines that start with
"From ".  Files use LF line ends as Dovecot's own delivery writes them
(some CRLF too), and their names carry the ,S= and ,W= sizes Dovecot puts
there, so that the server does no extra work the benchmark would measure.

--folders N --messages M writes M messages spread evenly over N folders
(INBOX, then Box/001, Box/002, ...), the same kind of messages: an
account of many small folders, or of a few large ones.

--big MB writes one INBOX message of about MB megabytes (a base64
attachment), streamed, to measure memory use on a single huge message.

The same seed and scale give the same bytes, names and mtimes.  Unlike
contrib/demo/gen_corpus.py, this corpus aims at realistic volume and size
distribution rather than at every awkward corner of the format.
"""

import argparse
import base64
import math
import os
import random
import sys
import time

# (folder, messages at scale 1.0, share of mailing-list mail)
FOLDERS = [
    ("INBOX", 1800, 0.2),
    ("Sent", 700, 0.0),
    ("Archive/2022", 1200, 0.3),
    ("Archive/2023", 1000, 0.3),
    ("Lists/dev", 600, 1.0),
    ("Drafts", 20, 0.0),
    ("Trash", 0, 0.0),
]

HOST = "bench.imapsnap.example"
T0, T1 = 1640995200, 1704067199  # 2022-01-01 .. 2023-12-31 UTC

NAMES = ["Alice Example", "Bob Builder", "Carol Jones", "Dave Miller",
         "Erin Smith", "Frank Zappa", "Grace Hopper", "Heidi Klum",
         "Ivan Petrov", "Judy Chen", "Mallory Doe", "Niaj Patel"]
DOMAINS = ["example.org", "example.com", "example.net", "corp.example",
           "mail.example.de"]
WORDS = ("the of and to in is that for it as was with be by on not he this "
         "are or his from at which but have an they you were her all she "
         "there would their we him been has when who will more no if out so "
         "said what up its about into than them can only other new some "
         "could time these two may then do first any my now such like our "
         "over man me even most made after also did many before must "
         "through back years where much your way well down should because "
         "each just those people how too little state good very make world "
         "still own see men work long get here between both life being under "
         "never day same another know while last might us great old year off "
         "come since against go came right used take three meeting release "
         "build server patch review deadline budget invoice schedule").split()
SUBJECTS = ["Quarterly numbers", "Re: lunch on Friday?", "Meeting notes",
            "Invoice {n}", "Re: Re: build failure on main", "Photos",
            "[dev] Patch v{n}: fix the parser", "Holiday plans",
            "Fwd: contract draft", "Your order {n} has shipped",
            "Re: review of release {n}", "Weekly report"]
ATTACHMENTS = [("report.pdf", "application/pdf"),
               ("photo.jpg", "image/jpeg"),
               ("scan.png", "image/png"),
               ("slides.pptx", "application/vnd.openxmlformats-officedocument"
                ".presentationml.presentation"),
               ("data.zip", "application/zip")]
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()

# Attachment size before base64: log-normal, median 40 KB, capped.
ATT_MEDIAN, ATT_SIGMA, ATT_MAX = 40_000, 1.2, 600_000


def mutf7(name):
    """Modified UTF-7 (RFC 3501 5.1.3); the names here are ASCII."""
    return name.replace("&", "&-")


def date_header(ts, tz):
    t = time.gmtime(ts + tz * 60)
    sign = "+" if tz >= 0 else "-"
    return "%s, %d %s %d %02d:%02d:%02d %s%02d%02d" % (
        DAYS[t.tm_wday], t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec, sign, abs(tz) // 60, abs(tz) % 60)


def person(rng):
    name = rng.choice(NAMES)
    local = name.split()[0].lower()
    return '%s <%s@%s>' % (name, local, rng.choice(DOMAINS))


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def wrap(text, width=72):
    lines, line = [], ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = line + " " + w if line else w
    if line:
        lines.append(line)
    return lines


def lognormal_int(rng, median, sigma, lo, hi):
    v = int(rng.lognormvariate(math.log(median), sigma))
    return max(lo, min(hi, v))


def text_body(rng, with_from):
    """Plain-text lines: a few KB, now and then much more."""
    size = lognormal_int(rng, 1500, 0.9, 80, 60_000)
    lines = []
    while sum(len(x) + 1 for x in lines) < size:
        lines += wrap(words(rng, rng.randint(8, 90)))
        lines.append("")
    if with_from:
        # mbox writers must quote these; Maildir keeps them as they are.
        at = rng.randint(0, len(lines))
        lines[at:at] = ["From the minutes of the last meeting:",
                        "From " + words(rng, 6)]
    if rng.random() < 0.3:  # a quoted reply
        lines += ["", "On %s, %s wrote:" % ("Monday", rng.choice(NAMES))]
        lines += ["> " + x for x in wrap(words(rng, rng.randint(20, 200)))]
    return lines


def headers(rng, ts, folder, n, listmail):
    tz = rng.choice([0, 60, 120, -300, -480, 540])
    sender, rcpt = person(rng), person(rng)
    subject = rng.choice(SUBJECTS).format(n=rng.randint(100, 99999))
    h = []
    for hop in range(rng.randint(2, 5)):
        h += ["Received: from mx%d.%s (mx%d.%s [192.0.2.%d])" % (
                  hop, rng.choice(DOMAINS), hop, rng.choice(DOMAINS),
                  rng.randint(1, 254)),
              "\tby %s (Postfix) with ESMTPS id %010X" % (
                  HOST, rng.getrandbits(40)),
              "\tfor <%s>; %s" % (rcpt.split("<")[1].rstrip(">"),
                                  date_header(ts - hop * 7, tz))]
    if rng.random() < 0.7:
        sig = base64.b64encode(rng.randbytes(256)).decode()
        h += ["DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
              "d=%s; s=sel1;" % rng.choice(DOMAINS),
              "\th=from:to:subject:date:message-id; bh=%s;" %
              base64.b64encode(rng.randbytes(32)).decode(),
              "\tb=" + "\n\t  ".join(sig[i:i + 70]
                                     for i in range(0, len(sig), 70))]
        h.append("Authentication-Results: %s; dkim=pass; spf=pass "
                 "smtp.mailfrom=%s; dmarc=pass" % (HOST, rng.choice(DOMAINS)))
    h += ["Date: " + date_header(ts, tz),
          "From: " + sender,
          "To: " + rcpt]
    if rng.random() < 0.3:
        h.append("Cc: " + ", ".join(person(rng)
                                    for _ in range(rng.randint(1, 4))))
    h += ["Subject: " + subject,
          "Message-ID: <%d.%d.%s@%s>" % (ts, n, folder.replace("/", "."),
                                         HOST)]
    if listmail:
        h += ["List-Id: Developers <dev.lists.example.org>",
              "List-Unsubscribe: <mailto:dev-leave@lists.example.org>",
              "Precedence: list"]
    return h


def make_message(rng, ts, folder, n, listmail):
    """The bytes of one message, LF line ends."""
    h = headers(rng, ts, folder, n, listmail)
    h.append("MIME-Version: 1.0")
    r = rng.random()
    with_from = rng.random() < 0.04
    if r < 0.10:  # with an attachment
        boundary = "=_mix_%016x" % rng.getrandbits(64)
        fname, ctype = rng.choice(ATTACHMENTS)
        raw = rng.randbytes(lognormal_int(rng, ATT_MEDIAN, ATT_SIGMA, 2_000,
                                          ATT_MAX))
        b64 = base64.b64encode(raw).decode()
        h.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        body = (["This is a multi-part message in MIME format.", "",
                 "--" + boundary,
                 "Content-Type: text/plain; charset=utf-8", ""] +
                text_body(rng, with_from) +
                ["--" + boundary,
                 'Content-Type: %s; name="%s"' % (ctype, fname),
                 'Content-Disposition: attachment; filename="%s"' % fname,
                 "Content-Transfer-Encoding: base64", ""] +
                [b64[i:i + 76] for i in range(0, len(b64), 76)] +
                ["--" + boundary + "--", ""])
    elif r < 0.30:  # text and HTML
        boundary = "=_alt_%016x" % rng.getrandbits(64)
        text = text_body(rng, with_from)
        html = ["<html><body>"] + ["<p>%s</p>" % x for x in text if x] + [
            "</body></html>"]
        h.append('Content-Type: multipart/alternative; boundary="%s"'
                 % boundary)
        body = (["--" + boundary,
                 "Content-Type: text/plain; charset=utf-8", ""] + text +
                ["--" + boundary,
                 "Content-Type: text/html; charset=utf-8", ""] + html +
                ["--" + boundary + "--", ""])
    else:
        h += ["Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 7bit"]
        body = text_body(rng, with_from)
    data = "\n".join(h) + "\n\n" + "\n".join(body) + "\n"
    return data.encode("ascii")


def folder_dir(maildir, name):
    if name == "INBOX":
        return maildir
    return os.path.join(maildir, "." + ".".join(
        mutf7(c) for c in name.split("/")))


def make_dirs(maildir, name):
    d = folder_dir(maildir, name)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    if d != maildir:
        open(os.path.join(d, "maildirfolder"), "w").close()
    return d


def file_name(ts, n, size, vsize, info):
    """Dovecot's own pattern: the sizes spare it a stat and a read."""
    return "%d.M%dP%d.%s,S=%d,W=%d%s" % (ts, n, 4000 + n % 1000, HOST, size,
                                        vsize, info)


def write_message(d, rng, ts, n, data, folder):
    crlf = rng.random() < 0.1
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    vsize = len(data) if crlf else len(data) + data.count(b"\n")
    if rng.random() < 0.05 and folder != "Drafts":
        path = os.path.join(d, "new", file_name(ts, n, len(data), vsize, ""))
    else:
        flags = ""
        if folder == "Drafts":
            flags += "D"
        if rng.random() < 0.15:
            flags += "F"
        if rng.random() < 0.2:
            flags += "R"
        if folder == "Sent" or rng.random() < 0.8:
            flags += "S"
        path = os.path.join(d, "cur", file_name(ts, n, len(data), vsize,
                                                ":2," + flags))
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (ts, ts))
    return len(data)


def spread(folders, messages):
    """`messages` over `folders` folders, as FOLDERS lists them."""
    out = []
    for i in range(folders):
        name = "INBOX" if i == 0 else "Box/%03d" % i
        count = messages // folders + (1 if i < messages % folders else 0)
        out.append((name, count, 0.2))
    return out


def write_corpus(maildir, seed, scale, folders=FOLDERS):
    rng = random.Random(seed)
    total_msgs = total_bytes = 0
    names = []
    for name, count, listshare in folders:
        d = make_dirs(maildir, name)
        names.append(name)
        count = int(round(count * scale))
        times = sorted(rng.randint(T0, T1) for _ in range(count))
        for n, ts in enumerate(times, 1):
            data = make_message(rng, ts, name, n, rng.random() < listshare)
            total_bytes += write_message(d, rng, ts, n, data, name)
            total_msgs += 1
    with open(os.path.join(maildir, "subscriptions"), "w") as f:
        f.write("".join(n + "\n" for n in names))
    return total_msgs, total_bytes, len(names)


def write_big(maildir, megabytes, seed):
    """One message of about `megabytes` MB, written in pieces."""
    rng = random.Random(seed)
    d = make_dirs(maildir, "INBOX")
    ts = T0
    boundary = "=_big_%016x" % rng.getrandbits(64)
    head = "\n".join(headers(rng, ts, "INBOX", 1, False) + [
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="%s"' % boundary, "",
        "--" + boundary, "Content-Type: text/plain; charset=utf-8", "",
        "The disk image you asked for.", "",
        "--" + boundary,
        'Content-Type: application/octet-stream; name="disk.img"',
        "Content-Disposition: attachment; filename=\"disk.img\"",
        "Content-Transfer-Encoding: base64", "", ""]).encode("ascii")
    tail = ("\n--" + boundary + "--\n").encode("ascii")
    # 57 raw bytes make one 76-character base64 line; 1 MB of output is
    # 13,797 lines of 77 bytes (LF).
    lines = megabytes * 1_000_000 // 77
    tmp = os.path.join(d, "tmp", "big")
    with open(tmp, "wb") as f:
        f.write(head)
        block = 10_000
        done = 0
        while done < lines:
            k = min(block, lines - done)
            raw = rng.randbytes(57 * k)
            out = b"".join(base64.b64encode(raw[i:i + 57]) + b"\n"
                           for i in range(0, len(raw), 57))
            f.write(out)
            done += k
        f.write(tail)
        size = f.tell()
    nl = head.count(b"\n") + lines + tail.count(b"\n")
    path = os.path.join(d, "cur", file_name(ts, 1, size, size + nl, ":2,S"))
    os.rename(tmp, path)
    os.utime(path, (ts, ts))
    return 1, size, 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every folder's message count")
    ap.add_argument("--big", type=int, metavar="MB",
                    help="write one message of about MB megabytes instead")
    ap.add_argument("--folders", type=int, metavar="N",
                    help="N folders (INBOX, Box/001, ...) instead of the "
                    "default seven; with --messages")
    ap.add_argument("--messages", type=int, metavar="M",
                    help="M messages spread evenly over --folders")
    ap.add_argument("maildir")
    a = ap.parse_args()
    if (a.folders is None) != (a.messages is None) or (
            a.folders is not None and a.folders < 1):
        ap.error("--folders N (N >= 1) and --messages M go together")
    if a.big:
        msgs, size, folders = write_big(a.maildir, a.big, a.seed)
    elif a.folders:
        msgs, size, folders = write_corpus(
            a.maildir, a.seed, 1.0, spread(a.folders, a.messages))
    else:
        msgs, size, folders = write_corpus(a.maildir, a.seed, a.scale)
    # One line for scripts: messages, bytes as stored, folders.
    print("%d %d %d" % (msgs, size, folders))


if __name__ == "__main__":
    sys.exit(main())
