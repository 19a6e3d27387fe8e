// server.js SPEC.json — a Gmail-like IMAP server for imapsnap's tests.
//
// hoodiecrow-imap (npm) with its X-GM-EXT-1 plugin, and a storage laid out
// as Gmail lays out an account: every message sits in "[Gmail]/All Mail"
// and, once more, in one folder per label ("\Inbox" is INBOX, "\Sent" is
// "[Gmail]/Sent Mail", "\Draft" "[Gmail]/Drafts", "\Important"
// "[Gmail]/Important", "\Starred" "[Gmail]/Starred", a user label "Work"
// the folder "Work"), with the same bytes, the same X-GM-MSGID and the same
// X-GM-LABELS in every folder.  As on Gmail, the copies are one message:
// a flag or label STOREd on any copy shows on all of them, adding a label
// puts a copy in that label's folder and removing one takes it out, and a
// message APPENDed to a label's folder also shows in All Mail.
//
// The spec (JSON): {"user", "password", "cert", "key" (PEM paths; TLS
// from the start when given), "labels": ["Work", "Work/2024", ...],
// "messages": [{"raw": base64, "date": "01-Jan-2020 10:00:00 +0000",
// "flags": [...], "labels": [...], "msgid": "decimal", "thrid":
// "decimal"}], "uidplus": false to leave UIDPLUS out (no APPENDUID)}.
// Listens on 127.0.0.1 at a free port and prints
// "READY <port>" on stdout.  Everything is in memory.
"use strict";

var fs = require("fs");
var hoodiecrow = require("hoodiecrow-imap");

var spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
var ALL = "[Gmail]/All Mail";
var SYSTEM = {
    "\\Inbox": "INBOX",
    "\\Sent": "[Gmail]/Sent Mail",
    "\\Draft": "[Gmail]/Drafts",
    "\\Important": "[Gmail]/Important",
    "\\Starred": "[Gmail]/Starred"
};

function labelFolder(label) {
    return SYSTEM[label] || label;
}

function folderLabel(path) {
    for (var k in SYSTEM) {
        if (SYSTEM[k] === path) {
            return k;
        }
    }
    return path === ALL ? null : path;
}

// The folder tree: INBOX, [Gmail]/..., and the user labels (nested at "/").
var gmail = {
    flags: ["\\Noselect"],
    folders: {
        "All Mail": { "special-use": "\\All" },
        "Drafts": { "special-use": "\\Drafts" },
        "Important": { "special-use": "\\Important" },
        "Sent Mail": { "special-use": "\\Sent" },
        "Starred": { "special-use": "\\Flagged" },
        "Spam": { "special-use": "\\Junk" },
        "Trash": { "special-use": "\\Trash" }
    }
};
var root = { "[Gmail]": gmail };
(spec.labels || []).forEach(function(label) {
    var parts = label.split("/"), node = root;
    parts.forEach(function(p) {
        node[p] = node[p] || {};
        node[p].folders = node[p].folders || {};
        node = node[p].folders;
    });
});

function mailbox(path) {
    if (path === "INBOX") {
        return storage.INBOX;
    }
    var parts = path.split("/"), node = { folders: root }, box = null;
    parts.forEach(function(p) {
        box = node.folders && node.folders[p];
        node = box || {};
    });
    return box;
}

var storage = { INBOX: { messages: [] }, "": { separator: "/", folders: root } };
(spec.messages || []).forEach(function(m) {
    var raw = Buffer.from(m.raw, "base64").toString("binary");
    var labels = m.labels || [];
    [ALL].concat(labels.map(labelFolder)).forEach(function(path) {
        var box = mailbox(path);
        if (!box) {
            throw new Error("no folder for label " + path);
        }
        box.messages = box.messages || [];
        box.messages.push({
            raw: raw,
            internaldate: m.date,
            flags: [].concat(m.flags || []),
            "X-GM-MSGID": m.msgid,
            "X-GM-THRID": m.thrid || m.msgid,
            _labels: [].concat(labels)
        });
    });
});

var server;
var ready = false;
var PLUGINS = ["ID", "ENABLE", "CONDSTORE", "SASL-IR", "AUTH-PLAIN",
    "NAMESPACE", "UIDPLUS", "SPECIAL-USE", "LITERALPLUS", "UNSELECT",
    "X-GM-EXT-1", gmailStorage, syncAfterStores];

// Every copy of a message, by X-GM-MSGID, with its folder.
function copies(msgid) {
    var out = [];
    Object.keys(server.folderCache).forEach(function(path) {
        var box = server.folderCache[path];
        (box.messages || []).forEach(function(msg) {
            if (msg["X-GM-MSGID"] === msgid) {
                out.push({ box: box, msg: msg });
            }
        });
    });
    return out;
}

function bumpModseq(box, msg) {
    box.HIGHESTMODSEQ = (box.HIGHESTMODSEQ || 0) + 1;
    msg.MODSEQ = box.HIGHESTMODSEQ;
}

// After a STORE on one copy: the same flags and labels on every copy, and
// one copy in each label's folder.
function sync(message, changedBox) {
    var all = copies(message["X-GM-MSGID"]);
    var labels = message["X-GM-LABELS"];
    all.forEach(function(c) {
        if (c.msg !== message) {
            c.msg.flags = [].concat(message.flags);
            c.msg["X-GM-LABELS"] = [].concat(labels);
            bumpModseq(c.box, c.msg);
        }
    });
    var want = [ALL].concat(labels.map(labelFolder));
    all.forEach(function(c) {
        if (want.indexOf(c.box.path) < 0) {
            c.box.messages.splice(c.box.messages.indexOf(c.msg), 1);
        }
    });
    want.forEach(function(path) {
        var box = server.folderCache[path];
        if (!box || all.some(function(c) { return c.box === box; })) {
            return;
        }
        var res = server.appendMessage(box, [].concat(message.flags),
            message.internaldate, message.raw);
        res.message["X-GM-MSGID"] = message["X-GM-MSGID"];
        res.message["X-GM-THRID"] = message["X-GM-THRID"];
        res.message["X-GM-LABELS"] = [].concat(labels);
    });
    void changedBox;
}

function gmailStorage(srv) {
    // Gmail says X-GM-EXT-1; the plugin does not.
    srv.registerCapability("X-GM-EXT-1");
    // hoodiecrow's SPECIAL-USE plugin answers LIST ... RETURN (SPECIAL-USE)
    // with the special-use flags alone, dropping \Noselect and the rest;
    // RFC 5258 adds to the attributes, and Gmail sends them all.
    srv.outputHandlers.push(function(connection, response, description,
        parsed, data, folder) {
        if ((description === "LIST ITEM" || description === "LSUB ITEM") &&
            folder && parsed && parsed.listSpecialUseFlags &&
            response.attributes && Array.isArray(response.attributes[0])) {
            response.attributes[0] = [].concat(folder.flags || [],
                folder["special-use"] || []).map(function(f) {
                return { type: "ATOM", value: f };
            });
        }
    });
    srv.fetchHandlers["X-GM-THRID"] = function(connection, message) {
        return { type: "ATOM", value: message["X-GM-THRID"] };
    };
    // The plugin labels a message with its folder's name; Gmail's labels
    // are the message's own.
    srv.messageHandlers.push(function(connection, message, box) {
        if (message._labels) {
            message["X-GM-LABELS"] = message._labels;
            delete message._labels;
            return;
        }
        if (!ready || message._copy) {
            return;
        }
        // APPENDed by a client: labelled by its folder, and in All Mail.
        var label = folderLabel(box.path);
        message["X-GM-LABELS"] = label ? [label] : [];
        if (!message["X-GM-THRID"]) {
            message["X-GM-THRID"] = message["X-GM-MSGID"];
        }
        if (box.path !== ALL && srv.folderCache[ALL]) {
            message._copy = true;
            process.nextTick(function() {
                sync(message, box);
            });
        }
    });
}

function syncAfterStores(srv) {
    Object.keys(srv.storeHandlers).forEach(function(key) {
        var orig = srv.storeHandlers[key];
        srv.storeHandlers[key] = function(connection, message) {
            var r = orig.apply(this, arguments);
            sync(message, connection.selectedMailbox);
            return r;
        };
    });
}

if (spec.uidplus === false) {
    PLUGINS.splice(PLUGINS.indexOf("UIDPLUS"), 1);
}
var options = {
    plugins: PLUGINS,
    id: { name: "imapsnap-gmail-test", version: "1" },
    users: {},
    storage: storage
};
options.users[spec.user] = { password: spec.password };
// New messages (APPEND) get ids above the spec's, never one of them.
var highest = (spec.messages || []).reduce(function(max, m) {
    return m.msgid && (m.msgid.length > max.length ||
        (m.msgid.length === max.length && m.msgid > max)) ? m.msgid : max;
}, "0");
if (highest !== "0") {
    options["HIGHESTX-GM-MSGID"] = highest;
}
if (spec.cert) {
    options.secureConnection = true;
    options.credentials = {
        key: fs.readFileSync(spec.key),
        cert: fs.readFileSync(spec.cert)
    };
}
server = hoodiecrow(options);
ready = true;
server.listen(0, "127.0.0.1", function() {
    process.stdout.write("READY " + server.server.address().port + "\n");
});
