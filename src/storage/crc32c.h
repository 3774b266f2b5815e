/* CRC32C (Castagnoli), the checksum of every WAL record and file header.
 *
 * Why CRC32C rather than CRC32: its polynomial (0x1EDC6F41, 0x82F63B78
 * reflected) detects more of the error patterns that disks and buses produce
 * at the record sizes we write, and it is the checksum most storage formats
 * and hardware (SSE4.2, ARMv8) share, so figures and tools carry over.
 *
 * The implementation is the plain reflected, table-driven form, one byte per
 * step, with the usual pre- and post-inversion: wal_crc32c("123456789") is
 * 0xE3069283. It has no state and no initialisation; the table is a constant
 * (tests/unit/test_storage_crc.c recomputes it bit by bit). */
#ifndef SABHA_STORAGE_CRC32C_H
#define SABHA_STORAGE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (the result of an earlier call, or 0 to start) over `size`
 * bytes at `data`, so that wal_crc32c(wal_crc32c(0, a, n), b, m) equals the
 * checksum of a followed by b. `data` may be NULL when size is 0. */
uint32_t wal_crc32c(uint32_t crc, const void *data, size_t size);

/* The same checksum from the lookup table alone, a byte at a time, for
 * tests to compare the fast path (the CPU's CRC32C instruction, where there
 * is one) against. */
uint32_t wal_crc32c_table(uint32_t crc, const void *data, size_t size);

/* The entry of the lookup table for byte value `i` (0..255): exposed so that a
 * test can check the table against the polynomial. */
uint32_t wal_crc32c_table_entry(unsigned i);

#endif
