/*
 * store.h — where messages go.  One small interface; each output format is
 * one file implementing it (maildir.c, mbox.c, archive.c).  The IMAP side
 * never knows which store it feeds.
 *
 * Lifecycle (one store per run and destination):
 *
 *   store_open(format, dest, &s, err)
 *   for each folder:
 *       [s->ops->retire_generation(s, folder, old_uidvalidity, err)]
 *       s->ops->open_folder(s, folder, &present, err)
 *       for each message:
 *           s->ops->begin_message(s, meta, err)
 *           s->ops->write(s, chunk, len, err) ...   // exactly meta->size bytes
 *           s->ops->end_message(s, final_meta, err) // or abort_message(s)
 *           ... every so often: s->ops->commit(s, err)
 *       s->ops->commit(s, err); s->ops->close_folder(s, err)
 *   s->ops->finish(s, err)
 *   store_free(s)
 *
 * Durability contract: when commit() returns ISNAP_OK, every message ended
 * since the previous commit survives a crash — unless ops->durable_at_finish
 * is set (archives: a volume only counts once complete), in which case that
 * holds only once finish() returns ISNAP_OK.  The caller records messages as
 * saved in the state only after that.  A message begun but not ended or
 * committed must never count as saved after a crash: either it is absent or
 * open_folder reports it in `present` only if it is complete.
 *
 * Stores never write outside `dest`: folder names become paths only through
 * fsname.h.  All memory passed in belongs to the caller and is only borrowed
 * for the duration of the call.
 */
#ifndef IMAPSNAP_STORE_H
#define IMAPSNAP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "uidset.h"

enum store_flag {
	STORE_FLAG_SEEN = 1 << 0,      /* \Seen      -> Maildir S */
	STORE_FLAG_ANSWERED = 1 << 1,  /* \Answered  -> R */
	STORE_FLAG_FLAGGED = 1 << 2,   /* \Flagged   -> F */
	STORE_FLAG_DELETED = 1 << 3,   /* \Deleted   -> T */
	STORE_FLAG_DRAFT = 1 << 4,     /* \Draft     -> D */
	STORE_FLAG_FORWARDED = 1 << 5, /* $Forwarded -> P */
};

#define STORE_NO_DATE INT64_MIN
#define STORE_NO_SIZE UINT64_MAX

struct store_message {
	uint32_t uid;
	unsigned flags;         /* enum store_flag bits */
	const char *keywords;   /* other flags and keywords, space-separated,
				   as the server spelled them; "" if none */
	int64_t internaldate;   /* seconds since the epoch (UTC), or
				   STORE_NO_DATE when not known (yet) */
	int tz_minutes;         /* the zone INTERNALDATE was given in */
	bool leap_second;       /* INTERNALDATE said :60 (a leap second,
				   RFC 3339 5.7, RFC 5322 3.3); internaldate
				   is then :59 of the same minute, the last
				   second POSIX times can hold */
	uint64_t rfc822_size;   /* RFC822.SIZE, or STORE_NO_SIZE */
	uint64_t size;          /* bytes write() will deliver in total */
	uint64_t modseq;        /* MODSEQ with CONDSTORE, else 0 */
	/* Gmail (X-GM-EXT-1, lib/imap/gmail.h); 0 and NULL elsewhere. */
	uint64_t gm_msgid;      /* the message's id in every folder */
	uint64_t gm_thrid;      /* its thread's */
	bool has_gm_labels;     /* gm_labels was fetched (may be empty) */
	const char *const *gm_labels; /* UTF-8 names, sorted */
	size_t gm_nlabels;
};

struct store_folder {
	const char *name;       /* the server's name (modified UTF-7) */
	const char *utf8;       /* decoded; equals name if it did not decode */
	char delim;             /* hierarchy delimiter, '\0' for none */
	/* The server's personal namespace prefix (raw; NULL: not known) and
	 * the folder's special-use role ("\Sent"; NULL: none), for the
	 * manifest's logical path (folder_map.h). */
	const char *ns_prefix;
	const char *role;
	uint32_t uidvalidity;
	/* What EXAMINE reported, for the manifest (0 when not reported). */
	uint32_t uidnext;
	uint32_t exists;
	uint64_t highestmodseq;
};

/* Where a message lives in the backup, for the manifest and verify
 * (docs/manifest.md).  `location` is a string in the format's own form,
 * relative to the destination:
 *   maildir   "<folder path>/cur/<uidvalidity>_<uid>.imapsnap" (no flags)
 *   mbox      "<folder path>.mbox@<offset of the From line>"
 *   mbox.gz   "<folder path>.mbox.gz@<offset in the uncompressed stream>"
 *   archives  "<entry name>", relative to the volume it is in (the
 *             volume's own file name is no part of it, so that a renamed
 *             export still matches; manifests before this held
 *             "<volume file name>!<entry name>")
 * When the store changes the bytes (mbox: LF line ends, >From quoting,
 * the Status: lines in `added`),
 * `stored_sha256` is the SHA-256 of the message bytes as stored (the From
 * line and the blank separator line excluded) and has_stored_sha256 is set;
 * otherwise the stored bytes are exactly the received ones. */
struct store_location {
	char location[4200];
	uint64_t stored_size;
	bool has_stored_sha256;
	unsigned char stored_sha256[32];
	/* Header lines the store added at the very start of the message as
	 * stored, which are no part of what the server sent (mbox: Status:
	 * and X-Status:, for mail readers); "" when none.  Reading a message
	 * back means leaving out these bytes first. */
	char added[32];
};

/* What store_scan reports: every message a backup in some format holds,
 * with the same `location` string that locate() gave when it was saved,
 * and everything else it finds there that is no message of that format.
 *
 * For one message: begin, data ... (the bytes as stored, in order, in
 * chunks), then end — or unreadable in place of end when reading failed
 * midway, or unreadable alone when the message could not be opened at
 * all.  The optional callbacks may be NULL: without `unreadable` such a
 * failure stops the scan with its error, without `stray` what is no
 * message is passed over in silence. */
struct store_scan_cb {
	void *ctx;
	enum isnap_status (*begin)(void *ctx, const char *location,
				   struct isnap_error *err);
	enum isnap_status (*data)(void *ctx, const void *data, size_t len,
				  struct isnap_error *err);
	enum isnap_status (*end)(void *ctx, struct isnap_error *err);

	/* Optional.  The message at `location` (begun or not) cannot be
	 * read: permission denied, a symlink or a device under a message's
	 * name, an I/O error, a damaged compressed stream.  `why` is one
	 * sentence.  The scan goes on with the next message (or, when the
	 * damage is in the stream itself, the next file or volume). */
	enum isnap_status (*unreadable)(void *ctx, const char *location,
					const char *why,
					struct isnap_error *err);
	/* Optional.  Something the backup holds that is no message of this
	 * format: a file under another name, a symlink, a FIFO, a directory
	 * that holds something and is not one of the store's, an archive
	 * entry of another kind.  `path` is relative to the destination, or,
	 * inside a volume (between volume(name) and volume(NULL)), the
	 * entry's name.  `leftover` marks what a run of this store left
	 * unfinished when it was interrupted (a Maildir tmp/ file, a
	 * temporary volume): imapsnap's own, removed by the next run. */
	enum isnap_status (*stray)(void *ctx, const char *path,
				   const char *what, bool leftover,
				   struct isnap_error *err);
	/* Optional.  Called right after begin: the most bytes the caller
	 * wants of that message (the size its manifest records).  The
	 * scanner hands over at most one byte more, so that the caller can
	 * tell the message grew, then skips the rest without storing or
	 * hashing it: a message that inflates far beyond its size (an
	 * archive bomb) costs no memory and no disk. */
	uint64_t (*limit)(void *ctx);
	/* Optional.  Archives: the messages and strays that follow are
	 * entries of volume `name` (a file name in the destination, or the
	 * single-file export's own name); NULL when that volume is done.
	 * Locations are relative to the volume, so a volume renamed or moved
	 * still matches its manifest. */
	void (*volume)(void *ctx, const char *name);
};

struct store;

/* What a store can do, for whoever schedules the writing (struct
 * store_ops.caps): the engine decides from these, never from the format's
 * name. */
enum store_cap {
	/* Several instances (store_open on the same dest, one per thread)
	 * may write different folders at the same time. */
	STORE_CAP_PARALLEL = 1 << 0,
	/* Several instances may write one folder at the same time, each
	 * messages of its own, in any order of UIDs, and the result is the
	 * same as one instance writing them in order (Maildir: one file per
	 * message, named by UID). */
	STORE_CAP_SPLIT_FOLDER = 1 << 1,
	/* open_folder's `present` is every message of the generation the
	 * folder holds, found cheaply (Maildir: one listing of cur/ and
	 * new/; mbox: the index, and the file read again only when it was
	 * changed since the last commit; archives: the volumes' records and
	 * their sizes), so that a run can fetch again a message its state
	 * says is saved and the store lost. */
	STORE_CAP_REPORTS_HELD = 1 << 2,
};

struct store_ops {
	const char *format;     /* "maildir", "mbox", ...: for the record */
	unsigned caps;          /* enum store_cap bits */
	bool durable_at_finish;

	enum isnap_status (*open_folder)(struct store *s,
					 const struct store_folder *f,
					 struct uidset *present,
					 struct isnap_error *err);
	/* The folder's UIDVALIDITY changed from `old`: move the copy of that
	 * generation aside, untouched, so that a new one can start. */
	enum isnap_status (*retire_generation)(struct store *s,
					       const struct store_folder *f,
					       uint32_t old,
					       struct isnap_error *err);
	/* `m` holds what the server sent before the body; fields not known yet
	 * are STORE_NO_DATE etc.  m->size is always known. */
	enum isnap_status (*begin_message)(struct store *s,
					   const struct store_message *m,
					   struct isnap_error *err);
	enum isnap_status (*write)(struct store *s, const void *data,
				   size_t len, struct isnap_error *err);
	/* `m` is complete now (the server may send FLAGS after the body).
	 * On failure the message is already discarded. */
	enum isnap_status (*end_message)(struct store *s,
					 const struct store_message *m,
					 struct isnap_error *err);
	/* Discard the message begun and not ended (call it after write
	 * fails).  Always safe: does nothing when no message is open. */
	void (*abort_message)(struct store *s);
	/* Optional (NULL when the format cannot change what it wrote): the
	 * server's flags of a message saved in an earlier run, in the open
	 * folder, changed; `m` has uid, flags, keywords and modseq.  Maildir
	 * renames the file's ":2," suffix.  ISNAP_EMSG when the UID is not
	 * in the store. */
	enum isnap_status (*update_flags)(struct store *s,
					  const struct store_message *m,
					  struct isnap_error *err);
	/* Right after end_message succeeded: where that message lives. */
	void (*locate)(struct store *s, struct store_location *loc);
	/* Optional (NULL for formats that never move what they wrote): right
	 * after open_folder, each message of the folder that the store found
	 * at another place than the one locate() gave, or with other bytes
	 * as stored (mbox: a file a mail reader rewrote; docs/formats.md),
	 * once: its UID, the old location, and the new one with the stored
	 * size and SHA-256 as they are now.  The store forgets them then. */
	void (*moves)(struct store *s,
		      void (*moved)(void *ctx, uint32_t uid, const char *from,
				    const struct store_location *to),
		      void *ctx);
	enum isnap_status (*commit)(struct store *s, struct isnap_error *err);
	/* Aborts a message still open and commits what was ended. */
	enum isnap_status (*close_folder)(struct store *s,
					  struct isnap_error *err);
	/* Archives only (NULL elsewhere): add the file open at `fd` (read from
	 * offset 0 to its end) as entry `name` of the volume being written,
	 * e.g. ".imapsnap/manifest.jsonl"; called before finish. */
	enum isnap_status (*add_meta_file)(struct store *s, const char *name,
					   int fd, struct isnap_error *err);
	enum isnap_status (*finish)(struct store *s, struct isnap_error *err);
	/* Release everything the format allocated, `s` included (store_free
	 * frees dest and closes dest_fd afterwards, so destroy may use them).
	 * Messages not committed are discarded. */
	void (*destroy)(struct store *s);
};

/* Every store starts with this. */
struct store {
	const struct store_ops *ops;
	char *dest;   /* the destination as given */
	int dest_fd;  /* O_DIRECTORY fd of dest (or of its parent for
			 single-file exports), owned by the store */
};

/* Open (creating if needed) a store of `format` at `dest`.  Formats:
 * "maildir", "mbox", "mbox.gz", "tar", "tar.gz", "tar.zst", "tar.xz" and
 * "zip".  Returns ISNAP_OK, ISNAP_EUSAGE (unknown format, or a
 * single-file name of another format) or ISNAP_ELOCAL. */
enum isnap_status store_open(const char *format, const char *dest,
			     struct store **out, struct isnap_error *err);
void store_free(struct store *s);

/* When `dest` names a single-file export — it ends in .tar, .tar.gz, .tgz,
 * .tar.zst, .tar.xz or .zip and is not an existing directory — the format
 * it implies ("tar.gz"); otherwise NULL.  A single-file export holds one
 * complete backup and keeps no state between runs. */
const char *store_single_file_format(const char *dest);

/* Read back every message of the backup of `format` at `dest` (what
 * store_open wrote there, all runs and generations), calling `cb` for each.
 * Used by verify; reads only, never writes. */
enum isnap_status store_scan(const char *format, const char *dest,
			     const struct store_scan_cb *cb,
			     struct isnap_error *err);

/* Which messages of folder `f` (its generation f->uidvalidity) the backup
 * of `format` at `dest` still holds, added to `held`: read-only and
 * cheap, so that a backup run can fetch again what its state says is
 * saved but the store has lost.  Maildir lists the folder's cur/ and new/
 * (one readdir each, no file opened); mbox and mbox.gz read the folder's
 * index and leave out the messages that end past the file as it is now
 * (a file cut short, or gone).  For the archive formats *known is false
 * and `held` untouched: only reading every volume would tell.  Bytes are
 * not checked here: that is verify's work.  ISNAP_OK, ISNAP_ELOCAL (a
 * directory or index that cannot be read), ISNAP_EFOLDER (no path for
 * the folder), ISNAP_ENOMEM. */
enum isnap_status store_held(const char *format, const char *dest,
			     const struct store_folder *f,
			     struct uidset *held, bool *known,
			     struct isnap_error *err);

/* The Maildir flag letters for `flags`, in ASCII order, into buf (at least
 * 8 bytes): "FRS". */
void store_flag_letters(unsigned flags, char *buf);

/* The IMAP name of one STORE_FLAG_* bit (\Seen, …, $Forwarded), or
 * NULL when `bit` is not exactly one of them.  The bits run from 1 << 0
 * up without a gap, so `for (b = 1; store_flag_name(b); b <<= 1)` visits
 * every flag, in the order of enum store_flag. */
const char *store_flag_name(unsigned bit);
/* The STORE_FLAG_* bit that an IMAP flag name stands for, compared
 * without regard to case as IMAP compares flags (\SEEN is \Seen); 0
 * for any other flag or keyword, \Recent included. */
unsigned store_flag_by_name(const char *name);

/* mkdir -p of `relpath` below dirfd (mode 0700); returns 0 or -1 (errno).
 * Each directory it creates is durable on return (its parent is fsynced).
 * An absolute path ignores dirfd, as with openat. */
int store_mkdirs(int dirfd, const char *relpath);

/* fsync a directory by path relative to dirfd ("" for dirfd itself);
 * returns 0 or -1 (errno).  A filesystem that cannot sync directories
 * (EINVAL) counts as success: there is nothing more to do there. */
int store_fsync_dir(int dirfd, const char *relpath);

/* Constructors, one per store file; called by store_open.  Maildir
 * (docs/maildir.md) refuses with ISNAP_EMSG to begin a UID the open folder
 * already holds, so that a repeated message never becomes a second file. */
enum isnap_status store_maildir_new(const char *dest, struct store **out,
				    struct isnap_error *err);
/* mbox and mbox.gz (docs/formats.md), with the same refusal of a UID the
 * folder already holds. */
enum isnap_status store_mbox_new(const char *dest, struct store **out,
				 struct isnap_error *err);
enum isnap_status store_mbox_gz_new(const char *dest, struct store **out,
				    struct isnap_error *err);
/* Archives (docs/formats.md): `format` is "tar", "tar.gz", "tar.zst",
 * "tar.xz" or "zip".  When store_single_file_format(dest) is not NULL it
 * must name the same format, and the store writes that one file; otherwise
 * dest is a directory of volumes. */
enum isnap_status store_archive_new(const char *format, const char *dest,
				    struct store **out,
				    struct isnap_error *err);

/* The scanners behind store_scan, one per store file. */
enum isnap_status store_maildir_scan(const char *dest,
				     const struct store_scan_cb *cb,
				     struct isnap_error *err);
enum isnap_status store_mbox_scan(const char *dest, bool gzip,
				  const struct store_scan_cb *cb,
				  struct isnap_error *err);
enum isnap_status store_archive_scan(const char *format, const char *dest,
				     const struct store_scan_cb *cb,
				     struct isnap_error *err);

#endif
