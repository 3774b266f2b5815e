/* Little-endian integers in byte buffers: the one encoding of every integer
 * sabha writes to a disk or a wire (WAL records, snapshots, peer frames,
 * batched entries, state machine commands and replies).
 *
 * Byte by byte, through shifts: no cast of the buffer to a wider type, so
 * the result does not depend on the host's byte order, a pointer needs no
 * alignment, and no object is read through a type it does not have.
 * Compilers still turn each into one load or store where the machine allows
 * it. `p` must hold the 2, 4 or 8 bytes; nothing is checked here, the
 * callers' framing checks lengths before it reads. */
#ifndef SABHA_CORE_ENDIAN_H
#define SABHA_CORE_ENDIAN_H

#include <stdint.h>

static inline void le_put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static inline void le_put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void le_put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t le_get_u16(const uint8_t *p) {
  return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t le_get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static inline uint64_t le_get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

#endif
