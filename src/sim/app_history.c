/* `--history FILE` for every workload: kv operations go through
 * hist_write_jsonl() line by line, so a kv history is byte for byte what it
 * was; application operations get their own line (format in sim.h:
 * sim_history_write_jsonl), with the op named after its command
 * ("LEDGER.TRANSFER" -> "ledger.transfer"), its arguments as strings and
 * the reply summary the client got. */
#include <ctype.h>
#include <stdio.h>

#include "check/json.h"
#include "sabha/engine.h"
#include "sim/sim.h"
#include "sm/app.h"

static const char *const reply_kinds[] = {"?",    "ok",    "integer", "bulk",
                                          "null", "error", "array"};

static const char *const code_names[] = {
    "done",         "syntax",        "exists", "no_such",    "funds",
    "same_account", "not_available", "held",   "not_holder", "stale_token",
    "transition",   "id_reused",     "full",   "overflow"};

static void write_op_name(FILE *f, enum app_op op) {
  const struct app_command *row = app_command_of(op);
  const char *name = row != NULL ? row->name : "unknown";
  fputc('"', f);
  for (; *name != '\0'; name++)
    fputc(tolower((unsigned char)*name), f);
  fputc('"', f);
}

static void write_reply(FILE *f, const struct sim_app_op *op) {
  size_t n_kinds = sizeof reply_kinds / sizeof reply_kinds[0];
  size_t n_codes = sizeof code_names / sizeof code_names[0];
  fprintf(f,
          ",\"reply\":{\"kind\":\"%s\",\"code\":\"%s\",\"integer\":%lld,"
          "\"duplicate\":%s}",
          op->reply_kind < n_kinds ? reply_kinds[op->reply_kind] : "?",
          op->code < n_codes ? code_names[op->code] : "?",
          (long long)op->integer, op->duplicate ? "true" : "false");
}

static void write_app_line(FILE *f, const struct hist_op *h,
                           const struct sim_app_op *op) {
  static const char *const statuses[] = {"ok", "fail", "info"};
  struct app_decoded d;
  bool decoded = app_decode(op->cmd, op->cmd_len, &d) == 0;
  fprintf(f, "{\"client\":%u,\"op\":", h->client);
  write_op_name(f, decoded ? d.op : 0);
  fprintf(f, ",\"args\":[");
  for (size_t i = 0; decoded && i < d.argc; i++) {
    if (i > 0)
      fputc(',', f);
    json_fput_bytes(f, d.argv[i].ptr, d.argv[i].len);
  }
  fprintf(f, "],\"call_us\":%llu", (unsigned long long)h->call_us);
  if (h->status != HIST_INFO)
    fprintf(f, ",\"return_us\":%llu", (unsigned long long)h->return_us);
  fprintf(f, ",\"status\":\"%s\"",
          h->status <= HIST_INFO ? statuses[h->status] : "?");
  if (h->status == HIST_OK && op->replied)
    write_reply(f, op);
  else
    fprintf(f, ",\"reply\":null");
  fprintf(f, "}\n");
}

int sim_history_write_jsonl(FILE *f, const struct hist_op *ops,
                            const struct sim_app_op *app_history, size_t n) {
  if (app_history == NULL)
    return hist_write_jsonl(f, ops, n);
  for (size_t i = 0; i < n; i++) {
    if (ops[i].kind != SIM_HIST_APP) {
      if (hist_write_jsonl(f, &ops[i], 1) != 0)
        return SABHA_EIO;
      continue;
    }
    write_app_line(f, &ops[i], &app_history[i]);
  }
  return fflush(f) == 0 && !ferror(f) ? 0 : SABHA_EIO;
}
