/* Fuzz target for the wire codec's decoder (src/net/codec.c).
 *
 * The input is one candidate frame, length field included. Beyond "never
 * crash and never read outside the input" (which the sanitizers check), the
 * oracle is canonicity: a frame the decoder accepts must encode back to
 * exactly the input bytes, so that no two byte strings mean the same
 * message and no byte of input is silently ignored. Every pointer the
 * decoder hands out must lie inside the input. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/codec.h"

static struct sabha_entry entries[CODEC_ENTRIES_MAX];

static int inside(const uint8_t *p, uint32_t n, const uint8_t *data,
                  size_t size) {
  if (n == 0)
    return p == NULL;
  return p != NULL && p >= data && (size_t)(p - data) <= size &&
         n <= size - (size_t)(p - data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= CODEC_HEADER_BYTES) {
    struct codec_header h;
    int rc = codec_peek(data, size, &h);
    if (rc != 0 && rc != SABHA_ECORRUPT)
      abort();
  }
  struct sabha_msg m;
  int rc = codec_decode(data, size, &m, entries, CODEC_ENTRIES_MAX);
  if (rc == SABHA_ECORRUPT)
    return 0;
  if (rc != 0)
    abort();
  for (uint32_t i = 0; i < m.n_entries; i++)
    if (!inside(m.entries[i].data, m.entries[i].size_bytes, data, size))
      abort();
  if (!inside(m.snap_data, m.snap_size_bytes, data, size))
    abort();
  size_t frame_bytes;
  if (codec_frame_size(&m, &frame_bytes) != 0 || frame_bytes != size)
    abort();
  uint8_t *again = malloc(frame_bytes);
  if (again == NULL)
    return 0;
  codec_write(&m, data[5], again, frame_bytes);
  if (memcmp(again, data, size) != 0)
    abort();
  free(again);
  return 0;
}
