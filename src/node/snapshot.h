/* The container of a sabhad snapshot: the key-value store, the
 * applications machine (src/sm/app.h) and the group's membership side by
 * side, in one blob that the WAL and the engines carry as opaque bytes.
 *
 * Why a container: the engines and the WAL know one snapshot per index,
 * while sabhad now replicates two state machines through one log. Both
 * must be cut at the same index, so they travel together; each keeps its
 * own format (and its own checksum), and the container only says where one
 * ends and the other begins.
 *
 * Format "SND3" (integers little-endian):
 *
 *   u32 magic "SND3" | u64 kv_len | kv_len bytes (a kvstore snapshot, "SKV1")
 *   | u64 app_len | app_len bytes (an app snapshot, "SAP1")
 *   | u64 conf_len | conf_len bytes (the membership as of the snapshot's
 *     index, sabha_membership_encode: "SCF1"; 0 bytes: none known)
 *   | u32 CRC32C (storage/crc32c.h) of every byte before it
 *
 * The membership is there because an engine must know who votes as of the
 * snapshot once the log before it is gone (Raft thesis §4.1, §5); it rides
 * in the container so that the WAL's format need not change. "SND2" (no
 * membership part, written before membership changes existed) is still
 * read: its group is the configured one.
 *
 * A bare kvstore snapshot (magic "SKV1", written by nodes before the
 * applications existed) is still accepted: it opens as a kvstore part and
 * no app part, which restores as an empty applications machine.
 *
 * The parts are written in place (rt_snap_kv_at, rt_snap_app_at) and the
 * container sealed around them, so a snapshot is never copied. Pure
 * functions over buffers: no allocation, no I/O, no global state. The same
 * format is described in docs/storage.md. */
#ifndef SABHA_NODE_SNAPSHOT_H
#define SABHA_NODE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define RT_SNAP_MAGIC "SND3"
#define RT_SNAP_V2_MAGIC "SND2"    /* without a membership part */
#define RT_SNAP_KV_MAGIC "SKV1"    /* a bare kvstore snapshot */
#define RT_SNAP_OVERHEAD_BYTES 32u /* magic, three lengths, CRC */

/* What rt_snap_open() found. */
struct rt_snap_parts {
  const uint8_t *kv; /* the kvstore snapshot */
  size_t kv_len;
  const uint8_t *app; /* the app snapshot; NULL for a bare "SKV1" */
  size_t app_len;
  const uint8_t *conf; /* the membership; NULL when none was kept */
  size_t conf_len;
};

/* Bytes of a container holding parts of these sizes. */
size_t rt_snap_size(size_t kv_len, size_t app_len, size_t conf_len);
/* Where the kvstore part goes in a container being built at buf. */
uint8_t *rt_snap_kv_at(uint8_t *buf);
/* Where the app part goes, after a kvstore part of kv_len bytes. */
uint8_t *rt_snap_app_at(uint8_t *buf, size_t kv_len);
/* Where the membership part goes, after the other two. */
uint8_t *rt_snap_conf_at(uint8_t *buf, size_t kv_len, size_t app_len);
/* Writes the magic, the lengths and the CRC around the parts already
 * written in place. buf holds rt_snap_size(kv_len, app_len, conf_len)
 * bytes; returns that size. */
size_t rt_snap_seal(uint8_t *buf, size_t kv_len, size_t app_len,
                    size_t conf_len);

/* Splits a snapshot into its parts (pointing into data). Returns 0, or
 * SABHA_ECORRUPT for an unknown magic, lengths that do not add up or a
 * checksum that does not match. The parts' own formats are checked by
 * their restore functions. */
int rt_snap_open(const uint8_t *data, size_t len, struct rt_snap_parts *out);

#endif
