/* sabha error codes.
 *
 * Every sabha function that can fail returns 0 or one negative SABHA_E* code
 * from the table below; sabha_strerror() turns a code into a sentence. The
 * table is an X-macro so that the enum and the strings cannot drift apart.
 * Codes are negative so that they can share a return value with a count or an
 * index, as libuv's do. */
#ifndef SABHA_ERROR_H
#define SABHA_ERROR_H

#define SABHA_ERRNO_MAP(X)                                                     \
  X(NOMEM, -1, "out of memory")                                                \
  X(INVAL, -2, "invalid argument")                                             \
  X(NOTLEADER, -3, "this node is not the leader")                              \
  X(BUSY, -4, "too many requests in flight; retry later")                      \
  X(TOOBIG, -5, "request larger than the configured limit")                    \
  X(PROTO, -6, "unknown protocol")                                             \
  X(COMPACTED, -7, "index has been compacted into a snapshot")                 \
  X(UNAVAILABLE, -8, "index is not in the log")                                \
  X(CORRUPT, -9, "data is corrupt")                                            \
  X(IO, -10, "input/output error")                                             \
  X(TRANSFER, -11, "a leadership transfer is in progress")                     \
  X(BUDGET, -12, "search budget exhausted")                                    \
  X(NOTSUPP, -13, "not supported by this protocol")                          \
  X(QUORUM, -14, "the change would leave no working majority")

enum sabha_errno {
  SABHA_OK = 0,
#define SABHA_ERRNO_ENUM(name, code, text) SABHA_E##name = (code),
  SABHA_ERRNO_MAP(SABHA_ERRNO_ENUM)
#undef SABHA_ERRNO_ENUM
};

/* Returns a static sentence for a code from the table, or "unknown error". */
const char *sabha_strerror(int err);

#endif
