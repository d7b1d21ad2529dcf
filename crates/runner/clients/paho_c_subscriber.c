/*
 * linecut's Eclipse Paho C subscriber: an MQTTAsync client reporting what it sees.
 *
 * Built against Debian's libpaho-mqtt1.3 1.3.12 (package libpaho-mqtt-dev), the non-TLS
 * asynchronous library:
 *
 *     gcc -O2 -Wall -Wextra -o paho_c_subscriber paho_c_subscriber.c -lpaho-mqtt3a
 *
 * (Debian's 1.3.12-1 build reports itself as "1.3.11" through MQTTAsync_getVersionInfo; the
 * first line printed gives what the library says.) Everything the client notices is printed on
 * stdout as one linecut event per line (JSON), stamped with the wall clock in Unix
 * microseconds; notes for people go to stderr. Source references below are to the library at
 * tag v1.3.12.
 *
 * The library's rules this program relies on (and does not change):
 *
 * - Keepalive. MQTTProtocol_keepalive (src/MQTTProtocolClient.c:700-782) runs from the send
 *   thread's retry pass, at most every clamp(K/10, 0.1 s, 5 s) (setRetryLoopInterval,
 *   src/MQTTAsyncUtils.c:2617). It sends PINGREQ when nothing was sent, or nothing received,
 *   for K, and gives up when the PINGREQ has been outstanding for 1.5K and nothing at all was
 *   received for 1.5K: it logs "PINGRESP not received in keepalive interval ..." and calls
 *   MQTTProtocol_closeSession -> nextOrClose (src/MQTTAsyncUtils.c:2689, :1598), which closes
 *   the socket and calls connectionLost with a NULL cause, whatever the reason.
 * - Reconnecting. automaticReconnect is off by default; this program turns it ON and keeps
 *   the initializer's minRetryInterval 1 s and maxRetryInterval 60 s: after a loss or a failed
 *   attempt the next one waits the interval (doubled after each failure, +/-20 % jitter,
 *   MQTTAsync_startConnectRetry/MQTTAsync_randomJitter, src/MQTTAsyncUtils.c:918, :119),
 *   checked every 3 s (MQTTAsync_checkTimeouts, :1681). A failed first connection is retried
 *   the same way. connectTimeout stays at 30 s (TCP connect plus CONNACK, checked every 3 s).
 *   MQTTVersion is set explicitly (3.1.1 or 5): MQTTVERSION_DEFAULT would fall back to 3.1.
 * - Subscriptions. Neither a reconnect nor CONNACK makes the library resubscribe, so the
 *   program subscribes (one SUBSCRIBE with every filter) from the connected callback, which
 *   the library calls after every successful CONNACK, automatic reconnects included
 *   (src/MQTTAsyncUtils.c:2119-2124): subscribe_sent reason "always".
 *
 * What the program observes and how:
 *
 * - Pings. A trace callback at MQTTASYNC_TRACE_PROTOCOL sees the library's protocol lines
 *   "-> PINGREQ (rc)" (src/MQTTPacketOut.c:210) and "<- PINGRESP" (src/MQTTProtocolOut.c:372);
 *   nothing else of the trace is printed. ping_sent only for rc 0 (a failed send closes the
 *   connection instead).
 * - CONNACK. "<- CONNACK rc: N" in the trace (src/MQTTAsyncUtils.c:1957) gives refusals; a
 *   successful one is reported from the connected callback. Session present is not passed to
 *   that callback on automatic reconnects; it is read from the trace: with a clean session it
 *   is false by the protocol, otherwise the library logs "Cleaning session state on connect
 *   because sessionPresent is 0" (src/MQTTAsyncUtils.c:1968) exactly when it was 0.
 * - Connect attempts. No callback reports an automatic reconnect attempt or its failure: the
 *   connect onFailure/onSuccess pointers are nulled after their first use
 *   (src/MQTTAsyncUtils.c:1658, :2099), connectionLost fires only for a connection that had
 *   its CONNACK, and TCP errors are traced only at TRACE_MINIMUM, a level that in this build
 *   also traces every function entry and exit. So the program defines connect(), getsockopt(),
 *   recv(), writev() and close() itself: the library's calls to them (it imports them from
 *   libc) land here, are passed unchanged to the kernel, and the program notes what they
 *   returned for the socket of the current attempt: the start of every TCP connect
 *   (connect_attempt), its errno (ECONNREFUSED -> refused), the end of stream or errno that
 *   ended a connection, and the moment the library closed the socket.
 * - Why a connection ended. connectionLost's cause is always NULL in 1.3.12. A keepalive
 *   timeout is told by its trace line (reported at that line, the library's decision); a
 *   FIN, a reset or a failed write by the recv()/writev() result on the socket; a CONNECT that
 *   got no CONNACK within connectTimeout by the close coming 30 s after the attempt began; an
 *   MQTT 5 server DISCONNECT by its trace line. A loss with none of these is connection_lost.
 * - Messages. The messageArrived callback: topic, QoS, dup, retained, msgid, payload.
 * - Stopping. SIGTERM/SIGINT only set a flag. The main thread, sleeping in 50 ms steps, then
 *   calls MQTTAsync_disconnect (timeout 500 ms) if connected and exits 0 within about 1 s;
 *   without a connection it exits 0 at once.
 */

#define _DEFAULT_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#define CONNECT_TIMEOUT_S 30 /* the connect options' default, kept */
#define MAX_TOPICS 64

/* ------------------------------------------------------------------ arguments */

static struct {
	const char *host;
	int port;
	const char *client_id;
	int keepalive;
	int clean;
	int v5;
	int ntopics;
	char *filters[MAX_TOPICS];
	int qos[MAX_TOPICS];
	long session_expiry; /* -1: not given */
	long receive_maximum;
	const char *will_topic;
	const char *will_payload;
	int will_qos;
	int will_retain;
	long will_delay;
} A;

static char broker[300];
static char trace_pingreq[400], trace_pingresp[400], trace_connack[400], trace_disc_in[400];

/* ------------------------------------------------------------------ state */

/* What the program knows about the current attempt (connection). Guarded by lock; nothing
 * is ever called in the library while it is held. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int quiet;           /* stopping: print nothing more */
	int attempt;         /* attempts started */
	int open;            /* the current attempt has not been reported ended */
	int fd;              /* its socket, -1 once the library closed it */
	int tcp_up;          /* TCP connect completed */
	int connack_ok;      /* CONNACK 0 seen on it */
	int connected;       /* connected callback seen, no loss since */
	int session_zero;    /* "Cleaning session state ... sessionPresent is 0" seen */
	int64_t start_us;    /* when the attempt's connect() was called */
	int64_t last_end_us; /* when the previous attempt or connection ended, -1: none yet */
	const char *io_cause;
	char io_text[160];
	char sock_text[320]; /* the library's socket error / PINGREQ send error line */
	char server_disc[120];
} S = {0, 0, 0, -1, 0, 0, 0, 0, 0, -1, NULL, "", "", ""};

static volatile sig_atomic_t stop_requested = 0;

/* ------------------------------------------------------------------ output */

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("paho_c_subscriber: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

typedef struct {
	char *p;
	size_t n, cap;
} jbuf;

static void jb_put(jbuf *b, const char *s, size_t len)
{
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (cap < b->n + len + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			note("out of memory");
			_exit(1);
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

static void jb_puts(jbuf *b, const char *s) { jb_put(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (len > n)
		return 0;
	cp = s[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string: quotes, backslashes and control characters escaped, bytes that are not
 * UTF-8 replaced by U+FFFD, so every line stays valid JSON whatever a topic holds. */
static void jb_string(jbuf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	char esc[8];
	jb_put(b, "\"", 1);
	while (i < len) {
		unsigned char c = u[i];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			jb_put(b, esc, 2);
			i++;
		} else if (c < 0x20) {
			if (c == '\n')
				jb_put(b, "\\n", 2);
			else if (c == '\r')
				jb_put(b, "\\r", 2);
			else if (c == '\t')
				jb_put(b, "\\t", 2);
			else {
				snprintf(esc, sizeof esc, "\\u%04x", c);
				jb_put(b, esc, 6);
			}
			i++;
		} else if (c < 0x80) {
			jb_put(b, s + i, 1);
			i++;
		} else {
			size_t l = utf8_len(u + i, len - i);
			if (l) {
				jb_put(b, s + i, l);
				i += l;
			} else {
				jb_put(b, "\\ufffd", 6);
				i++;
			}
		}
	}
	jb_put(b, "\"", 1);
}

static void jb_begin(jbuf *b, const char *type)
{
	char head[128];
	b->p = NULL;
	b->n = b->cap = 0;
	snprintf(head, sizeof head, "{\"ts_us\":%" PRId64 ",\"source\":\"subscriber\",\"type\":\"%s\"",
		 now_us(), type);
	jb_puts(b, head);
	jb_puts(b, ",\"client\":");
	jb_string(b, A.client_id, strlen(A.client_id));
}

static void jb_key(jbuf *b, const char *key)
{
	jb_puts(b, ",\"");
	jb_puts(b, key);
	jb_puts(b, "\":");
}

static void jb_str(jbuf *b, const char *key, const char *s)
{
	jb_key(b, key);
	jb_string(b, s, strlen(s));
}

static void jb_int(jbuf *b, const char *key, long long v)
{
	char num[32];
	snprintf(num, sizeof num, "%lld", v);
	jb_key(b, key);
	jb_puts(b, num);
}

static void jb_bool(jbuf *b, const char *key, int v)
{
	jb_key(b, key);
	jb_puts(b, v ? "true" : "false");
}

/* Writes the line; the caller holds lock. */
static void jb_emit(jbuf *b)
{
	jb_puts(b, "}\n");
	if (!S.quiet) {
		fwrite(b->p, 1, b->n, stdout);
		fflush(stdout);
	}
	free(b->p);
	b->p = NULL;
}

static void emit_simple(const char *type)
{
	jbuf b;
	jb_begin(&b, type);
	jb_emit(&b);
}

/* ------------------------------------------------------------------ attempts */

static const char *errno_name(int e)
{
	switch (e) {
	case ECONNREFUSED: return "ECONNREFUSED";
	case ECONNRESET: return "ECONNRESET";
	case ECONNABORTED: return "ECONNABORTED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EPIPE: return "EPIPE";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ENETUNREACH: return "ENETUNREACH";
	case ENETDOWN: return "ENETDOWN";
	case EHOSTDOWN: return "EHOSTDOWN";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case ENOTCONN: return "ENOTCONN";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOBUFS: return "ENOBUFS";
	case EINVAL: return "EINVAL";
	default: return "errno";
	}
}

static const char *cause_for_errno(int e, int established)
{
	switch (e) {
	case ECONNREFUSED: return "refused";
	case ECONNRESET: case EPIPE: case ECONNABORTED: return "connection_reset";
	case ETIMEDOUT: return established ? "kernel_timeout" : "connect_timeout";
	default: return "other";
	}
}

/* Reports the end of the current attempt (lock held). */
static void attempt_end(const char *cause, const char *error)
{
	jbuf b;
	if (!S.open)
		return;
	S.open = 0;
	S.connected = 0;
	S.last_end_us = now_us();
	jb_begin(&b, "disconnected");
	jb_str(&b, "cause", cause);
	jb_str(&b, "error", error);
	jb_emit(&b);
}

/* A TCP connect is about to start on fd (lock held). */
static void attempt_begin(int fd)
{
	jbuf b;
	int64_t t = now_us();
	if (S.open)
		attempt_end("other", "a new connect started before the library reported the last one ended");
	S.attempt++;
	S.open = 1;
	S.fd = fd;
	S.tcp_up = S.connack_ok = S.connected = S.session_zero = 0;
	S.start_us = t;
	S.io_cause = NULL;
	S.io_text[0] = S.sock_text[0] = S.server_disc[0] = '\0';
	jb_begin(&b, "connect_attempt");
	jb_int(&b, "attempt", S.attempt);
	jb_str(&b, "broker", broker);
	jb_int(&b, "delay_ms", S.last_end_us < 0 ? 0 : (t - S.last_end_us) / 1000);
	jb_emit(&b);
}

/* The library closed the attempt's socket, or said the connection was lost: why, as far as
 * the program saw (lock held). */
static void attempt_end_observed(const char *how)
{
	char text[700];
	if (!S.open)
		return;
	if (S.quiet) {
		S.open = 0;
		return;
	}
	if (S.io_cause != NULL) {
		snprintf(text, sizeof text, "%s; %s%s%s", how, S.io_text, S.sock_text[0] ? "; " : "", S.sock_text);
		attempt_end(S.io_cause, text);
	} else if (S.server_disc[0]) {
		snprintf(text, sizeof text, "%s; %s", how, S.server_disc);
		attempt_end("closed_by_peer", text);
	} else if (!S.connack_ok) {
		if (S.tcp_up && now_us() - S.start_us >= (int64_t)CONNECT_TIMEOUT_S * 1000000 - 500000) {
			snprintf(text, sizeof text, "%s; no CONNACK within connectTimeout (%d s)", how, CONNECT_TIMEOUT_S);
			attempt_end("connect_timeout", text);
		} else {
			snprintf(text, sizeof text, "%s before CONNACK%s%s", how, S.sock_text[0] ? "; " : "", S.sock_text);
			attempt_end("other", text);
		}
	} else if (S.sock_text[0]) {
		snprintf(text, sizeof text, "%s; %s", how, S.sock_text);
		attempt_end("other", text);
	} else {
		snprintf(text, sizeof text, "%s; connectionLost (cause NULL)", how);
		attempt_end("connection_lost", text);
	}
}

/* ------------------------------------------------------------------ socket calls
 *
 * The library's own calls to these libc functions resolve to the definitions below (the
 * program is searched before libc). Each passes its arguments to the kernel unchanged and
 * returns what the kernel returned, with its errno; it only looks at the result. */

static int is_stream(int fd)
{
	int type = 0;
	socklen_t len = sizeof type;
	if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
		return 0;
	return type == SOCK_STREAM;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	int watched = addr != NULL && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6) &&
		is_stream(fd);
	long rc;
	int err;
	if (watched) {
		pthread_mutex_lock(&lock);
		attempt_begin(fd);
		pthread_mutex_unlock(&lock);
	}
	rc = syscall(SYS_connect, fd, addr, len);
	err = errno;
	if (watched) {
		pthread_mutex_lock(&lock);
		if (rc == 0) {
			if (S.fd == fd)
				S.tcp_up = 1;
		} else if (err != EINPROGRESS && err != EINTR && err != EAGAIN && S.fd == fd && S.open) {
			char text[160];
			snprintf(text, sizeof text, "connect: %s (%s)", errno_name(err), strerror(err));
			attempt_end(cause_for_errno(err, 0), text);
		}
		pthread_mutex_unlock(&lock);
	}
	errno = err;
	return (int)rc;
}

int getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
	long rc = syscall(SYS_getsockopt, fd, level, name, value, len);
	int err = errno;
	if (rc == 0 && level == SOL_SOCKET && name == SO_ERROR && value != NULL && len != NULL &&
	    *len >= sizeof(int)) {
		int e = *(int *)value;
		pthread_mutex_lock(&lock);
		if (fd == S.fd && S.open && !S.tcp_up) {
			if (e == 0)
				S.tcp_up = 1;
			else {
				char text[160];
				snprintf(text, sizeof text, "connect: %s (%s)", errno_name(e), strerror(e));
				attempt_end(cause_for_errno(e, 0), text);
			}
		}
		pthread_mutex_unlock(&lock);
	}
	errno = err;
	return (int)rc;
}

static void note_io_end(int fd, const char *call, long rc, int err)
{
	pthread_mutex_lock(&lock);
	if (fd == S.fd && S.open && S.io_cause == NULL) {
		if (rc == 0) {
			S.io_cause = "closed_by_peer";
			snprintf(S.io_text, sizeof S.io_text, "%s: end of stream", call);
		} else {
			S.io_cause = cause_for_errno(err, 1);
			snprintf(S.io_text, sizeof S.io_text, "%s: %s (%s)", call, errno_name(err), strerror(err));
		}
	}
	pthread_mutex_unlock(&lock);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	long rc = syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
	int err = errno;
	/* recv(fd, NULL, 0, 0) is the library draining a socket it is closing: not an end. */
	if (n > 0 && (rc == 0 || (rc < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR)))
		note_io_end(fd, "recv", rc, err);
	errno = err;
	return (ssize_t)rc;
}

ssize_t writev(int fd, const struct iovec *iov, int count)
{
	long rc = syscall(SYS_writev, fd, iov, count);
	int err = errno;
	if (rc < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR)
		note_io_end(fd, "writev", rc, err);
	errno = err;
	return (ssize_t)rc;
}

int close(int fd)
{
	long rc;
	int err;
	if (fd >= 0) {
		pthread_mutex_lock(&lock);
		if (fd == S.fd) {
			attempt_end_observed("socket closed by the library");
			S.fd = -1;
		}
		pthread_mutex_unlock(&lock);
	}
	rc = syscall(SYS_close, fd);
	err = errno;
	errno = err;
	return (int)rc;
}

/* ------------------------------------------------------------------ library callbacks */

static MQTTAsync client;

/* The library's protocol trace (called with its log mutex held). */
static void on_trace(enum MQTTASYNC_TRACE_LEVELS level, char *message)
{
	const char *p;
	(void)level;
	if (message == NULL)
		return;
	pthread_mutex_lock(&lock);
	if ((p = strstr(message, trace_pingreq)) != NULL) {
		int rc = atoi(p + strlen(trace_pingreq));
		if (rc == 0)
			emit_simple("ping_sent");
		else
			note("PINGREQ send returned %d", rc);
	} else if ((p = strstr(message, trace_pingresp)) != NULL && p[strlen(trace_pingresp)] == '\0') {
		emit_simple("ping_received");
	} else if ((p = strstr(message, trace_connack)) != NULL) {
		int rc = atoi(p + strlen(trace_connack));
		if (rc == 0) {
			S.connack_ok = 1;
		} else if (S.open) {
			jbuf b;
			char text[120];
			jb_begin(&b, "connack");
			jb_int(&b, "code", rc);
			jb_bool(&b, "session_present", 0);
			jb_emit(&b);
			snprintf(text, sizeof text, "CONNACK return code %d", rc);
			attempt_end("refused", text);
		}
	} else if (strstr(message, "Cleaning session state on connect because sessionPresent is 0") != NULL) {
		S.session_zero = 1;
	} else if ((p = strstr(message, "PINGRESP not received in keepalive interval")) != NULL ||
		   (p = strstr(message, "PINGREQ still outstanding")) != NULL) {
		/* The library's decision; it closes the socket right after. */
		attempt_end("keepalive_timeout", p);
	} else if ((p = strstr(message, "Error sending PINGREQ")) != NULL ||
		   (p = strstr(message, "Socket error for client identifier")) != NULL) {
		snprintf(S.sock_text, sizeof S.sock_text, "%s", p);
	} else if ((p = strstr(message, trace_disc_in)) != NULL) {
		snprintf(S.server_disc, sizeof S.server_disc, "server DISCONNECT, reason code %d",
			 atoi(p + strlen(trace_disc_in)));
	}
	pthread_mutex_unlock(&lock);
}

static void on_connection_lost(void *context, char *cause)
{
	(void)context;
	pthread_mutex_lock(&lock);
	if (cause != NULL)
		snprintf(S.sock_text, sizeof S.sock_text, "connectionLost cause: %s", cause);
	attempt_end_observed("connectionLost");
	S.connected = 0;
	pthread_mutex_unlock(&lock);
}

/* One `suback` event: the packet's codes, one per filter. Called with the lock held. */
static void emit_suback(int token, const int *codes, int n)
{
	jbuf b;
	int i;
	jb_begin(&b, "suback");
	jb_int(&b, "packet_id", token);
	jb_key(&b, "codes");
	jb_puts(&b, "[");
	for (i = 0; i < n; i++) {
		char num[16];
		snprintf(num, sizeof num, "%s%d", i ? "," : "", codes[i]);
		jb_puts(&b, num);
	}
	jb_puts(&b, "]");
	jb_emit(&b);
}

static void on_suback(void *context, MQTTAsync_successData *r)
{
	int codes[MAX_TOPICS];
	int i;
	(void)context;
	for (i = 0; i < A.ntopics; i++)
		codes[i] = A.ntopics == 1 ? r->alt.qos : r->alt.qosList != NULL ? r->alt.qosList[i] : -1;
	pthread_mutex_lock(&lock);
	emit_suback(r->token, codes, A.ntopics);
	pthread_mutex_unlock(&lock);
}

static void on_suback_failure(void *context, MQTTAsync_failureData *r)
{
	(void)context;
	pthread_mutex_lock(&lock);
	if (r->code == 0x80) { /* one filter, refused by the server */
		int refused = 0x80;
		emit_suback(r->token, &refused, 1);
	} else
		note("SUBSCRIBE %d failed, code %d", r->token, r->code);
	pthread_mutex_unlock(&lock);
}

static void on_suback5(void *context, MQTTAsync_successData5 *r)
{
	int codes[MAX_TOPICS];
	int i, n = r->alt.sub.reasonCodeCount;
	(void)context;
	if (n > MAX_TOPICS)
		n = MAX_TOPICS;
	for (i = 0; i < n; i++)
		codes[i] = n > 1 && r->alt.sub.reasonCodes != NULL
			? (int)r->alt.sub.reasonCodes[i] : (int)r->reasonCode;
	pthread_mutex_lock(&lock);
	emit_suback(r->token, codes, n);
	pthread_mutex_unlock(&lock);
}

static void on_suback5_failure(void *context, MQTTAsync_failureData5 *r)
{
	(void)context;
	pthread_mutex_lock(&lock);
	if (r->reasonCode >= 0x80) { /* one filter, refused by the server */
		int refused = (int)r->reasonCode;
		emit_suback(r->token, &refused, 1);
	} else
		note("SUBSCRIBE %d failed, code %d", r->token, r->code);
	pthread_mutex_unlock(&lock);
}

static void subscribe_all(void)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;
	if (A.v5) {
		ro.onSuccess5 = on_suback5;
		ro.onFailure5 = on_suback5_failure;
	} else {
		ro.onSuccess = on_suback;
		ro.onFailure = on_suback_failure;
	}
	rc = MQTTAsync_subscribeMany(client, A.ntopics, A.filters, A.qos, &ro);
	pthread_mutex_lock(&lock);
	if (rc == MQTTASYNC_SUCCESS) {
		jbuf b;
		int i;
		jb_begin(&b, "subscribe_sent");
		jb_str(&b, "reason", "always");
		jb_key(&b, "topics");
		jb_puts(&b, "[");
		for (i = 0; i < A.ntopics; i++) {
			char num[32];
			jb_puts(&b, i ? ",{\"filter\":" : "{\"filter\":");
			jb_string(&b, A.filters[i], strlen(A.filters[i]));
			snprintf(num, sizeof num, ",\"qos\":%d}", A.qos[i]);
			jb_puts(&b, num);
		}
		jb_puts(&b, "]");
		jb_emit(&b);
	} else
		note("MQTTAsync_subscribeMany returned %d (%s)", rc, MQTTAsync_strerror(rc));
	pthread_mutex_unlock(&lock);
}

/* Called by the library after every CONNACK 0, first connection and automatic reconnects. */
static void on_connected(void *context, char *reason)
{
	jbuf b;
	(void)context;
	(void)reason;
	pthread_mutex_lock(&lock);
	S.connack_ok = 1;
	S.connected = 1;
	jb_begin(&b, "connack");
	jb_int(&b, "code", 0);
	jb_bool(&b, "session_present", A.clean ? 0 : !S.session_zero);
	jb_emit(&b);
	pthread_mutex_unlock(&lock);
	subscribe_all();
}

static void on_server_disconnect(void *context, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	(void)context;
	(void)props;
	pthread_mutex_lock(&lock);
	snprintf(S.server_disc, sizeof S.server_disc, "server DISCONNECT, reason code %d (%s)", (int)rc,
		 MQTTReasonCode_toString(rc) ? MQTTReasonCode_toString(rc) : "?");
	pthread_mutex_unlock(&lock);
}

/* linecut's payload: lc1/<seq>/<pub_ts_us>/<padding>. */
static int parse_digits(const char *s, size_t len, int allow_minus, long long *out)
{
	unsigned long long v = 0;
	size_t i = 0;
	int neg = 0;
	if (allow_minus && len > 0 && s[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i >= len)
		return 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (ULLONG_MAX - 9) / 10)
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > (unsigned long long)LLONG_MAX)
		return 0;
	*out = neg ? -(long long)v : (long long)v;
	return 1;
}

static int decode_payload(const char *p, size_t len, long long *seq, long long *ts)
{
	const char *s1, *s2, *s3, *end = p + len;
	if (len < 4 || memcmp(p, "lc1/", 4) != 0)
		return 0;
	s1 = p + 3;
	s2 = memchr(s1 + 1, '/', (size_t)(end - s1 - 1));
	if (s2 == NULL)
		return 0;
	s3 = memchr(s2 + 1, '/', (size_t)(end - s2 - 1));
	if (s3 == NULL)
		return 0;
	return parse_digits(s1 + 1, (size_t)(s2 - s1 - 1), 0, seq) &&
		parse_digits(s2 + 1, (size_t)(s3 - s2 - 1), 1, ts);
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	jbuf b;
	long long seq, ts;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	(void)context;
	pthread_mutex_lock(&lock);
	jb_begin(&b, "message");
	jb_key(&b, "topic");
	jb_string(&b, topic, tlen);
	jb_int(&b, "qos", m->qos);
	jb_bool(&b, "dup", m->dup);
	jb_bool(&b, "retain", m->retained);
	jb_int(&b, "payload_len", m->payloadlen);
	if (m->qos > 0)
		jb_int(&b, "packet_id", m->msgid);
	if (decode_payload((const char *)m->payload, (size_t)m->payloadlen, &seq, &ts)) {
		jb_int(&b, "seq", seq);
		jb_int(&b, "pub_ts_us", ts);
	} else
		jb_bool(&b, "foreign", 1);
	jb_emit(&b);
	pthread_mutex_unlock(&lock);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

/* ------------------------------------------------------------------ main */

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage_exit(const char *fmt, const char *arg)
{
	fputs("paho_c_subscriber: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(2);
}

static long parse_long(const char *name, const char *v, long lo, long hi)
{
	char *end;
	long x;
	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || x < lo || x > hi)
		usage_exit("bad value for --%s", name);
	return x;
}

static void parse_args(int argc, char **argv)
{
	int i;
	A.port = -1;
	A.keepalive = 60;
	A.clean = 1;
	A.session_expiry = A.receive_maximum = A.will_delay = -1;
	A.will_payload = "";
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq, *value;
		char name[64];
		size_t nlen;
		if (strncmp(arg, "--", 2) != 0)
			usage_exit("unexpected argument %s", arg);
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (nlen >= sizeof name)
			usage_exit("unknown option %s", arg);
		memcpy(name, arg + 2, nlen);
		name[nlen] = '\0';
		if (eq)
			value = eq + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		else
			usage_exit("--%s needs a value", name);
		if (!strcmp(name, "host"))
			A.host = value;
		else if (!strcmp(name, "port"))
			A.port = (int)parse_long(name, value, 1, 65535);
		else if (!strcmp(name, "client-id"))
			A.client_id = value;
		else if (!strcmp(name, "keepalive"))
			A.keepalive = (int)parse_long(name, value, 0, 65535);
		else if (!strcmp(name, "clean-session"))
			A.clean = (int)parse_long(name, value, 0, 1);
		else if (!strcmp(name, "mqtt")) {
			if (!strcmp(value, "3.1.1"))
				A.v5 = 0;
			else if (!strcmp(value, "5"))
				A.v5 = 1;
			else
				usage_exit("--mqtt must be 3.1.1 or 5, not %s", value);
		} else if (!strcmp(name, "topic")) {
			const char *colon = strrchr(value, ':');
			size_t flen;
			if (colon == NULL)
				usage_exit("--topic needs FILTER:QOS, got %s", value);
			if (A.ntopics == MAX_TOPICS)
				usage_exit("too many topics (%s)", value);
			flen = (size_t)(colon - value);
			A.filters[A.ntopics] = malloc(flen + 1);
			if (A.filters[A.ntopics] == NULL)
				usage_exit("out of memory%s", "");
			memcpy(A.filters[A.ntopics], value, flen);
			A.filters[A.ntopics][flen] = '\0';
			A.qos[A.ntopics] = (int)parse_long("topic", colon + 1, 0, 2);
			A.ntopics++;
		} else if (!strcmp(name, "session-expiry"))
			A.session_expiry = parse_long(name, value, 0, 4294967295L);
		else if (!strcmp(name, "receive-maximum"))
			A.receive_maximum = parse_long(name, value, 1, 65535);
		else if (!strcmp(name, "will-topic"))
			A.will_topic = value;
		else if (!strcmp(name, "will-payload"))
			A.will_payload = value;
		else if (!strcmp(name, "will-qos"))
			A.will_qos = (int)parse_long(name, value, 0, 2);
		else if (!strcmp(name, "will-retain"))
			A.will_retain = (int)parse_long(name, value, 0, 1);
		else if (!strcmp(name, "will-delay"))
			A.will_delay = parse_long(name, value, 0, 4294967295L);
		else
			usage_exit("unknown option --%s", name);
	}
	if (A.host == NULL || A.port < 0 || A.client_id == NULL || A.ntopics == 0)
		usage_exit("--host, --port, --client-id and --topic are required%s", "");
	if (!A.v5 && (A.session_expiry >= 0 || A.receive_maximum >= 0 || A.will_delay >= 0))
		usage_exit("--session-expiry, --receive-maximum and --will-delay are MQTT 5 only; "
			   "cannot honour them with --mqtt 3.1.1%s", "");
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The first line: the library's version and build, as it reports them. */
static void emit_client_info(void)
{
	MQTTAsync_nameValue *info;
	const char *version = "?", *build = "?";
	char detail[200];
	jbuf b;

	for (info = MQTTAsync_getVersionInfo(); info != NULL && info->name != NULL; info++) {
		if (!strcmp(info->name, "Version"))
			version = info->value;
		else if (!strcmp(info->name, "Build level"))
			build = info->value;
	}
	snprintf(detail, sizeof detail, "MQTTAsync (libpaho-mqtt3a), build %s, MQTT %s", build,
		 A.v5 ? "5" : "3.1.1");
	pthread_mutex_lock(&lock);
	jb_begin(&b, "client_info");
	jb_str(&b, "library", "paho.mqtt.c");
	jb_str(&b, "version", version);
	jb_str(&b, "detail", detail);
	jb_emit(&b);
	pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
	MQTTAsync_connectOptions opts5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTProperties connect_props = MQTTProperties_initializer;
	MQTTProperties will_props = MQTTProperties_initializer;
	char uri[320];
	struct sigaction sa;
	sigset_t stops, old;
	int rc;

	/* --version: the library's version as loaded (linecut's check that it is installed). */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--version")) {
			A.client_id = "";
			emit_client_info();
			return 0;
		}
	}
	parse_args(argc, argv);
	snprintf(broker, sizeof broker, strchr(A.host, ':') ? "[%s]:%d" : "%s:%d", A.host, A.port);
	snprintf(uri, sizeof uri, "tcp://%s", broker);
	snprintf(trace_pingreq, sizeof trace_pingreq, " %s -> PINGREQ (", A.client_id);
	snprintf(trace_pingresp, sizeof trace_pingresp, " %s <- PINGRESP", A.client_id);
	snprintf(trace_connack, sizeof trace_connack, " %s <- CONNACK rc: ", A.client_id);
	snprintf(trace_disc_in, sizeof trace_disc_in, " %s <- DISCONNECT (", A.client_id);

	/* The library's threads inherit this mask, so a stop signal reaches the main thread. */
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stops, &old);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	emit_client_info();

	co.MQTTVersion = A.v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	rc = MQTTAsync_createWithOptions(&client, uri, A.client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		note("MQTTAsync_createWithOptions: %d (%s)", rc, MQTTAsync_strerror(rc));
		return 2;
	}
	MQTTAsync_setCallbacks(client, NULL, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(client, NULL, on_connected);
	if (A.v5)
		MQTTAsync_setDisconnected(client, NULL, on_server_disconnect);
	MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_PROTOCOL);
	MQTTAsync_setTraceCallback(on_trace);

	if (A.v5) {
		opts = opts5;
		opts.cleansession = 0;
		opts.cleanstart = A.clean;
		if (A.session_expiry >= 0) {
			MQTTProperty p;
			p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
			p.value.integer4 = (unsigned int)A.session_expiry;
			MQTTProperties_add(&connect_props, &p);
		}
		if (A.receive_maximum >= 0) {
			MQTTProperty p;
			p.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM;
			p.value.integer2 = (unsigned short)A.receive_maximum;
			MQTTProperties_add(&connect_props, &p);
		}
		if (connect_props.count > 0)
			opts.connectProperties = &connect_props;
	} else
		opts.cleansession = A.clean;
	opts.MQTTVersion = A.v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	opts.keepAliveInterval = A.keepalive;
	opts.connectTimeout = CONNECT_TIMEOUT_S;
	opts.automaticReconnect = 1; /* off by default; min 1 s / max 60 s from the initializer */
	if (A.will_topic != NULL) {
		will.topicName = A.will_topic;
		will.message = NULL;
		will.payload.len = (int)strlen(A.will_payload);
		will.payload.data = A.will_payload;
		will.qos = A.will_qos;
		will.retained = A.will_retain;
		opts.will = &will;
		if (A.will_delay >= 0) {
			MQTTProperty p;
			p.identifier = MQTTPROPERTY_CODE_WILL_DELAY_INTERVAL;
			p.value.integer4 = (unsigned int)A.will_delay;
			MQTTProperties_add(&will_props, &p);
			opts.willProperties = &will_props;
		}
	}
	rc = MQTTAsync_connect(client, &opts);
	if (rc != MQTTASYNC_SUCCESS) {
		note("MQTTAsync_connect: %d (%s)", rc, MQTTAsync_strerror(rc));
		return 2;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	while (!stop_requested)
		sleep_ms(50);

	pthread_mutex_lock(&lock);
	rc = S.connected;
	pthread_mutex_unlock(&lock);
	if (rc && MQTTAsync_isConnected(client)) {
		MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;
		int i;
		dopts.timeout = 500;
		pthread_mutex_lock(&lock);
		S.quiet = 1;
		pthread_mutex_unlock(&lock);
		if (MQTTAsync_disconnect(client, &dopts) == MQTTASYNC_SUCCESS)
			for (i = 0; i < 20 && MQTTAsync_isConnected(client); i++)
				sleep_ms(50);
	}
	pthread_mutex_lock(&lock);
	S.quiet = 1;
	fflush(stdout);
	pthread_mutex_unlock(&lock);
	_exit(0);
}
