/*
 * archive_record.h — what each volume of a directory of volumes holds, so
 * that a run can tell cheaply which saved messages the backup still has
 * (docs/formats.md, "Healing").  One small file per volume,
 * DEST/.imapsnap/volumes/<volume name>, written and synced before the
 * volume is put in place:
 *
 *   imapsnap-volume 1
 *   size <the volume's size in bytes>
 *   folder <uidvalidity> <folder path, to the end of the line>
 *   saved <UID set>                (one or more; the union counts)
 *   ...
 *   end
 *
 * A volume is intact when it is a regular file of the recorded size: one
 * fstatat per volume, nothing read.  A volume of another size is damaged:
 * it is moved, with its record, to DEST/.imapsnap/damaged/ (kept, never
 * read again) and its messages count as lost.  A volume gone counts as
 * lost, its record stays.  A volume without a record (written before
 * records were kept) is read once, its entries' names only, and gets one.
 *
 * Memory: one UID set per folder and volume.
 */
#ifndef IMAPSNAP_STORE_ARCHIVE_RECORD_H
#define IMAPSNAP_STORE_ARCHIVE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/archive_kind.h"
#include "uidset.h"

#define VOLUME_RECORD_DIR ".imapsnap/volumes"
#define DAMAGED_DIR ".imapsnap/damaged"

struct volume_folder {
	char *path;
	uint32_t uidvalidity;
	struct uidset uids;
};

/* What one volume holds. */
struct volume_record {
	struct volume_folder *f;
	size_t n, alloc;
	uint64_t size;
	bool intact;        /* the volume is there, of the recorded size */
};

/* `uid` of folder `path`, generation `uidvalidity`, is in the volume.
 * 0, or -1 (out of memory). */
int volume_record_add(struct volume_record *r, const char *path,
		      uint32_t uidvalidity, uint32_t uid);
/* Write the record of volume `volume` (a name in dest_fd), of `size`
 * bytes: temporary file, fsync, rename, fsync of the directory. */
enum isnap_status volume_record_write(int dest_fd, const char *dest,
				      const char *volume, uint64_t size,
				      const struct volume_record *r,
				      struct isnap_error *err);
/* Remove the record of `volume` (its volume could not be put in place). */
void volume_record_remove(int dest_fd, const char *volume);
void volume_record_free(struct volume_record *r);

/* Every volume's record, checked as above. */
struct volume_records {
	struct volume_record *v;
	size_t n;
	uint64_t damaged, gone; /* volumes */
};

enum isnap_status volume_records_load(int dest_fd, const char *dest,
				      const struct archive_kind *kind,
				      struct volume_records *out,
				      struct isnap_error *err);
/* Add to `held` the UIDs of folder `path` (generation `uidvalidity`)
 * in intact volumes.  0, or -1 (out of memory). */
int volume_records_held(const struct volume_records *rs, const char *path,
			uint32_t uidvalidity, struct uidset *held);
void volume_records_free(struct volume_records *rs);

#endif
