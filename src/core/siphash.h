/* SipHash-2-4, keyed: see siphash.c. */
#ifndef SABHA_CORE_SIPHASH_H
#define SABHA_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash24(const uint8_t *p, size_t n, const uint64_t key[2]);

#endif
