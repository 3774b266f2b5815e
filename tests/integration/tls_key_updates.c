/* A TLS client that sends no request at all, only a KeyUpdate that asks
 * for one back every INTERVAL_MS, for the integration tests: sabhad must
 * count none of that as HTTP progress (tls_key_updates.sh). Python's ssl
 * module, which the other tests use, cannot send a KeyUpdate.
 *
 *   tls_key_updates CA_FILE PORT SECONDS INTERVAL_MS
 *
 * Connects to 127.0.0.1:PORT, completes the handshake (TLS 1.3, the
 * server's certificate checked against CA_FILE), then asks for key updates
 * until the server closes the connection or SECONDS pass. Prints one line,
 * "closed after N ms, U updates" or "open after N ms, U updates", and
 * exits 0; 1 when it could not connect or complete the handshake. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((unsigned short)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads what the server sent (its KeyUpdates, or the end): false once the
 * connection is over. */
static bool still_open(SSL *ssl) {
  char buf[4096];
  for (int i = 0; i < 64; i++) {
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0)
      continue; /* sabhad sends nothing unasked; a 408 would end below */
    int e = SSL_get_error(ssl, n);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
  }
  return true;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s CA_FILE PORT SECONDS INTERVAL_MS\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[2]);
  long long run_ms = atoll(argv[3]) * 1000, every_ms = atoll(argv[4]);
  if (port <= 0 || port > 65535 || run_ms <= 0 || run_ms > 600000 ||
      every_ms <= 0) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[1], NULL) != 1 ||
      SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int fd = dial(port);
  SSL *ssl = fd < 0 ? NULL : SSL_new(ctx);
  if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
    fprintf(stderr, "no TLS connection to port %d\n", port);
    ERR_print_errors_fp(stderr);
    return 1;
  }
  /* The clock starts once the handshake is done, a little after sabhad's
   * does. */
  long long start = now_ms(), next = start;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  unsigned updates = 0;
  bool open = true;
  while (open && now_ms() - start < run_ms) {
    if (now_ms() >= next) {
      if (SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) != 1)
        break;
      SSL_do_handshake(ssl); /* sends it now */
      updates++;
      next += every_ms;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 50) > 0)
      open = still_open(ssl);
  }
  printf("%s after %lld ms, %u updates\n", open ? "open" : "closed",
         now_ms() - start, updates);
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  return 0;
}
