/* The applications machine (src/sm/app.h) as the node sees it: RESP
 * arguments to app commands, app replies to RESP, reads from the machine,
 * and INFO's "# Apps" section.
 *
 * The life of an app command is otherwise a kvstore command's: commands.c
 * finds it in the rows built from app_commands(), checks its arity and
 * argument sizes; requests.c dispatches it, proposes a write encoded here
 * and answers it when runtime.c applies it (matched by its tag); a read
 * waits for its ReadIndex like GET and is served here. Kept apart so that
 * the one place that knows the app's reply and argument types is small.
 * docs/apps.md is the user's guide. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/runtime_internal.h"

/* Client arguments as the machine's (the bytes stay where they are). */
static size_t to_app_args(uint32_t argc, const struct resp_arg *argv,
                          struct app_arg *out) {
  /* The arity check (argc_max <= APP_ARGS_MAX) came first. */
  assert(argc <= APP_ARGS_MAX);
  for (uint32_t i = 0; i < argc; i++) {
    out[i].ptr = argv[i].ptr;
    out[i].len = argv[i].len;
  }
  return argc;
}

size_t rt_app_encode(struct rt *rt, enum app_op op, uint32_t argc,
                     const struct resp_arg *argv, const struct app_hdr *hdr) {
  struct app_arg args[APP_ARGS_MAX];
  size_t nargs = to_app_args(argc, argv, args);
  size_t size = app_encode(NULL, 0, hdr, op, args, nargs);
  /* Sizes were checked (app_args_fit): 0 here would be a programmer error. */
  assert(size > 0);
  uint8_t *buf = rt_enc_reserve(rt, size);
  if (buf == NULL || size == 0)
    return 0;
  size_t written = app_encode(buf, size, hdr, op, args, nargs);
  assert(written == size);
  return written;
}

/* One BULK or ERROR text of a reply, bounded by the text buffer. */
static void write_text(struct resp_buf *b, uint8_t kind, const char *text,
                       size_t len) {
  if (kind == APP_REPLY_BULK) {
    resp_write_bulk(b, text, len);
    return;
  }
  char msg[APP_REPLY_TEXT_MAX + 1];
  if (len > APP_REPLY_TEXT_MAX)
    len = APP_REPLY_TEXT_MAX;
  memcpy(msg, text, len);
  msg[len] = '\0'; /* resp_write_error turns CR and LF into spaces */
  resp_write_error(b, msg);
}

static void write_item(struct resp_buf *b, const struct app_reply *rep,
                       const struct app_reply_item *it) {
  switch (it->kind) {
  case APP_REPLY_OK:
    resp_write_simple(b, "OK");
    return;
  case APP_REPLY_INT:
    resp_write_int(b, it->integer);
    return;
  case APP_REPLY_NULL:
    resp_write_null(b);
    return;
  case APP_REPLY_BULK:
  case APP_REPLY_ERROR:
    if ((size_t)it->off + it->len > APP_REPLY_TEXT_MAX)
      break; /* the machine broke its contract: say so, not garbage */
    write_text(b, it->kind, rep->text + it->off, it->len);
    return;
  default:
    break;
  }
  resp_write_error(b, "ERR malformed reply item");
}

void rt_write_app_reply(struct resp_buf *b, const struct app_reply *rep) {
  size_t text_len =
      rep->text_len < APP_REPLY_TEXT_MAX ? rep->text_len : APP_REPLY_TEXT_MAX;
  switch (rep->kind) {
  case APP_REPLY_OK:
    resp_write_simple(b, "OK");
    return;
  case APP_REPLY_INT:
    resp_write_int(b, rep->integer);
    return;
  case APP_REPLY_NULL:
    resp_write_null(b);
    return;
  case APP_REPLY_BULK:
  case APP_REPLY_ERROR:
    write_text(b, rep->kind, rep->text, text_len);
    return;
  case APP_REPLY_ARRAY: {
    uint32_t n_items =
        rep->n_items < APP_REPLY_ITEMS_MAX ? rep->n_items : APP_REPLY_ITEMS_MAX;
    resp_write_array(b, n_items);
    for (uint32_t i = 0; i < n_items; i++)
      write_item(b, rep, &rep->items[i]);
    return;
  }
  default:
    break;
  }
  resp_write_error(b, "ERR unknown reply");
}

void rt_app_read(struct rt *rt, enum app_op op, uint32_t argc,
                 const struct resp_arg *argv, uint64_t now_ms,
                 struct resp_buf *b) {
  struct app_arg args[APP_ARGS_MAX];
  size_t nargs = to_app_args(argc, argv, args);
  struct app_reply rep;
  memset(&rep, 0, sizeof rep);
  int rc = app_read(rt->app, op, args, nargs, now_ms, &rep);
  if (rc != 0) {
    resp_write_error(b, "ERR not a read");
    return;
  }
  rt_write_app_reply(b, &rep);
}

void rt_app_info(struct rt *rt, struct resp_buf *b) {
  uint64_t accounts = 0;
  int64_t total = 0;
  app_ledger_audit(rt->app, &accounts, &total);
  /* Counts the machine keeps: a walk of the seats took 46 ms of the loop
   * for each INFO with 2 Mi of them. */
  uint64_t seats = 0, booked = 0;
  app_seats_count(rt->app, &seats, &booked);
  /* The rules in force come from the log once a rules entry applied;
   * dedup_max and dedup_window_ms are this node's settings, which its
   * leader proposes when they differ. */
  struct app_rules rules;
  bool recorded = app_rules_in_force(rt->app, &rules);
  resp_buf_printf(b,
                  "# Apps\r\napp_accounts:%" PRIu64 "\r\n"
                  "app_ledger_total_paise:%" PRId64 "\r\n"
                  "app_seats:%" PRIu64 "\r\napp_seats_booked:%" PRIu64 "\r\n"
                  "app_clock_ms:%" PRIu64 "\r\napp_dedup_max:%u\r\n"
                  "app_dedup_window_ms:%u\r\n"
                  "app_rules_dedup_max:%u\r\n"
                  "app_rules_dedup_window_ms:%u\r\n"
                  "app_rules_from:%s\r\n"
                  "app_retry_table_full:%" PRIu64 "\r\n\r\n",
                  accounts, total, seats, booked, app_clock_ms(rt->app),
                  rt->cfg.dedup_max, rt->cfg.dedup_window_ms, rules.dedup_max,
                  rules.dedup_window_ms, recorded ? "log" : "settings",
                  rt->m.apps_retry_table_full);
}
