/* sabha_strerror(): the sentences behind the SABHA_E* codes. */
#include "sabha/error.h"

const char *sabha_strerror(int err) {
  switch (err) {
  case SABHA_OK:
    return "success";
#define SABHA_ERRNO_CASE(name, code, text)                                     \
  case (code):                                                                 \
    return text;
    SABHA_ERRNO_MAP(SABHA_ERRNO_CASE)
#undef SABHA_ERRNO_CASE
  default:
    return "unknown error";
  }
}
