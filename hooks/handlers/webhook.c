/*
 * webhook.c - the webhook handler: an event POSTed as JSON over HTTP(S).
 *
 *     [rule hook]
 *     handler = webhook
 *     action = post
 *     option.url = https://hooks.example.com/otpenroll
 *     option.headers = Authorization: Bearer 1234; X-Site: {ca}
 *     option.timeout = 10          ; seconds
 *     option.ca_file = /etc/otpenroll/hooks-ca.pem
 *
 * The body is the event's JSON snapshot with "rule" and "delivery_id"
 * added.  X-Otpenroll-Delivery carries the delivery id, the same on every
 * attempt, so that a receiver can drop a duplicate; X-Otpenroll-Event
 * names the event.  Extra headers are "Name: value" items separated by
 * ';' or line ends, each value a one-line template.  The URL is a
 * template too, its tags in the path or the query (not in the scheme or
 * host, which the rule fixes) and their values percent-encoded, so that
 * "/hook/{serial}?user={user}" reaches that path whatever a value holds.
 *
 * Post: 2xx is delivered; 408, 429, 5xx and transport errors are worth
 * another attempt; any other answer is final.  Pre: 2xx allows, anything
 * else refuses with the first line of the answer as the reason.
 *
 * TLS peer and host name verification are always on (ca_file replaces
 * the system's trust anchors); redirects are not followed; only http and
 * https are spoken.  One curl handle serves the jobs of one pass, so that
 * jobs to one server share a connection.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "handler.h"
#include "hbuf.h"
#include "hopt.h"

#define WH_HEADERS_MAX 32           /* extra headers of one rule */
#define WH_TEXT_MAX (1024 * 1024)   /* a request body, a preview */
#define WH_REPLY_MAX 1024           /* what is kept of an answer's body */

static const char *const wh_actions[] = { "post", NULL };
static const char *const wh_options[] = { "url", "headers", "timeout", "ca_file", NULL };

/* Headers the handler writes itself (or that would confuse HTTP framing). */
static const char *const wh_reserved[] = {
	"Content-Type", "Content-Length", "Transfer-Encoding", "Host", "Connection",
	"Expect", "X-Otpenroll-Delivery", "X-Otpenroll-Event", NULL
};

/* s as a JSON string, quotes included. */
static void
buf_json(struct hbuf *b, const char *s)
{
	hbuf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			hbuf_add(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			hbuf_add(b, esc, 6);
		} else {
			hbuf_add(b, s, 1);
		}
	}
	hbuf_add(b, "\"", 1);
}

/* ---- the headers option ---- */

struct wh_hdrs {
	char *copy;                       /* the option, cut into items */
	const char *name[WH_HEADERS_MAX];
	const char *value[WH_HEADERS_MAX]; /* templates */
	size_t n;
};

static bool
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static void
hdrs_clear(struct wh_hdrs *hs)
{
	free(hs->copy);
	hs->copy = NULL;
	hs->n = 0;
}

/* Split a headers option (may be NULL) into items; -1 with err set. */
static int
hdrs_parse(struct wh_hdrs *hs, const char *opt, char *err, size_t errlen)
{
	char *rest, *item;

	hs->copy = NULL;
	hs->n = 0;
	if (opt == NULL)
		return 0;
	if ((hs->copy = strdup(opt)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rest = hs->copy;
	while ((item = strsep(&rest, ";\n")) != NULL) {
		char *name = trim(item), *colon, *p;

		if (*name == '\0')
			continue;
		if ((colon = strchr(name, ':')) == NULL) {
			snprintf(err, errlen, "option.headers: \"%.64s\" is not \"Name: value\"", name);
			goto bad;
		}
		*colon = '\0';
		for (p = name; *p && tchar((unsigned char)*p); p++)
			;
		if (*name == '\0' || *p != '\0') {
			snprintf(err, errlen, "option.headers: \"%.64s\" is not a header name", name);
			goto bad;
		}
		for (size_t i = 0; wh_reserved[i]; i++)
			if (strcasecmp(name, wh_reserved[i]) == 0) {
				snprintf(err, errlen, "option.headers: %s is set by the handler", name);
				goto bad;
			}
		if (hs->n == WH_HEADERS_MAX) {
			snprintf(err, errlen, "option.headers: more than %d headers", WH_HEADERS_MAX);
			goto bad;
		}
		hs->name[hs->n] = name;
		hs->value[hs->n] = trim(colon + 1);
		hs->n++;
	}
	return 0;
bad:
	hdrs_clear(hs);
	return -1;
}

/* ---- the URL ---- */

/* 0 when url is an absolute http or https URL with a host; else -1, err set. */
static int
url_check(const char *url, char *err, size_t errlen)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL;
	int ret = -1;

	if (url == NULL || *url == '\0') {
		snprintf(err, errlen, "option.url is required");
		return -1;
	}
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "option.url: a space or control character");
			return -1;
		}
	if ((u = curl_url()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		snprintf(err, errlen, "option.url: \"%.100s\" is not a URL", url);
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		snprintf(err, errlen, "option.url: %s is not http or https", scheme);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0') {
		snprintf(err, errlen, "option.url: \"%.100s\" has no host", url);
		goto out;
	}
	ret = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ret;
}

/*
 * Tags only in the path or the query: in the scheme, the credentials or
 * the host an event's values would choose where the event goes.
 */
static int
url_tags_check(const char *url, char *err, size_t errlen)
{
	const char *auth = strstr(url, "://");
	size_t end = auth ? (size_t)(auth - url) + 3 : 0;

	end += strcspn(url + end, "/?#");
	if (memchr(url, '{', end) != NULL) {
		snprintf(err, errlen, "option.url: a tag before the path (tags go in the path "
			 "or the query)");
		return -1;
	}
	return 0;
}

/* The URL as messages show it: without user name and password. */
static char *
url_shown(const char *url)
{
	CURLU *u = curl_url();
	char *s = NULL, *shown = NULL;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK)
		shown = strdup(s);
	curl_free(s);
	curl_url_cleanup(u);
	return shown ? shown : strdup("(the URL)");
}

/* ---- requests ---- */

struct wh_request {
	char *url;                            /* option.url rendered */
	char *shown;                          /* url without credentials */
	long timeout;
	const char *ca_file;
	char *hdr[WH_HEADERS_MAX + 3];         /* "Name: value" */
	size_t nhdr;
	char *body;
};

static void
request_free(struct wh_request *rq)
{
	free(rq->url);
	free(rq->shown);
	for (size_t i = 0; i < rq->nhdr; i++)
		free(rq->hdr[i]);
	free(rq->body);
	memset(rq, 0, sizeof(*rq));
}

static int
request_header(struct wh_request *rq, const char *name, const char *value)
{
	struct hbuf b = HBUF_INIT(WH_TEXT_MAX);

	hbuf_str(&b, name);
	hbuf_str(&b, ": ");
	hbuf_str(&b, value);
	if ((rq->hdr[rq->nhdr] = hbuf_take(&b)) == NULL)
		return -1;
	rq->nhdr++;
	return 0;
}

/*
 * The body: the snapshot with "rule" and "delivery_id" appended.  The
 * payload is the engine's JSON object, so the members are spliced in
 * before its closing brace.
 */
static char *
request_body(const oe_hook_job *job, char *err, size_t errlen)
{
	const char *payload = job->payload ? job->payload : "{}";
	const char *start = payload, *end = payload + strlen(payload);
	struct hbuf b = HBUF_INIT(WH_TEXT_MAX);
	bool empty = true;
	char *body;

	while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r')
		start++;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
			       end[-1] == '\r'))
		end--;
	if (end - start < 2 || *start != '{' || end[-1] != '}') {
		snprintf(err, errlen, "webhook: the event is not a JSON object");
		return NULL;
	}
	for (const char *p = start + 1; p < end - 1; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			empty = false;
	hbuf_add(&b, start, (size_t)(end - 1 - start));
	hbuf_str(&b, empty ? "\"rule\":" : ",\"rule\":");
	buf_json(&b, job->rule ? job->rule : "");
	if (job->delivery_id && *job->delivery_id) { /* pre jobs have none */
		hbuf_str(&b, ",\"delivery_id\":");
		buf_json(&b, job->delivery_id);
	}
	hbuf_str(&b, "}");
	if ((body = hbuf_take(&b)) == NULL)
		snprintf(err, errlen, "webhook: out of memory (or an event over %d bytes)",
			 WH_TEXT_MAX);
	return body;
}

/*
 * Everything one job sends.  OE_HOOK_OK, or the status the job gets
 * (with job->error set) when the request cannot be made.
 */
static enum oe_hook_status
request_build(const oe_hook_host *h, oe_hook_job *job, struct wh_request *rq)
{
	const char *event = job->event ? job->event : h->field(job, "event");
	struct wh_hdrs hs = { 0 };
	enum oe_hook_status st = OE_HOOK_RETRY;
	char err[200];

	memset(rq, 0, sizeof(*rq));
	rq->ca_file = h->option(job, "ca_file");
	if (h->option(job, "url") &&
	    (rq->url = h->render(job, h->option(job, "url"), OE_RENDER_URL)) == NULL)
		goto nomem;
	if (url_check(rq->url, job->error, sizeof(job->error)) != 0 ||
	    hopt_timeout(h->option(job, "timeout"), &rq->timeout) != 0 ||
	    hdrs_parse(&hs, h->option(job, "headers"), job->error, sizeof(job->error)) != 0) {
		if (*job->error == '\0')
			snprintf(job->error, sizeof(job->error), "option.timeout: not a number of seconds");
		st = OE_HOOK_FAIL;
		goto out;
	}
	if ((rq->shown = url_shown(rq->url)) == NULL)
		goto nomem;
	if (request_header(rq, "Content-Type", "application/json") != 0)
		goto nomem;
	if (job->delivery_id && *job->delivery_id &&
	    request_header(rq, "X-Otpenroll-Delivery", job->delivery_id) != 0)
		goto nomem;
	if (event && request_header(rq, "X-Otpenroll-Event", event) != 0)
		goto nomem;
	for (size_t i = 0; i < hs.n; i++) {
		char *value = h->render(job, hs.value[i], OE_RENDER_HEADER);
		int r;

		if (value == NULL)
			goto nomem;
		r = request_header(rq, hs.name[i], value);
		free(value);
		if (r != 0)
			goto nomem;
	}
	if ((rq->body = request_body(job, err, sizeof(err))) == NULL) {
		snprintf(job->error, sizeof(job->error), "%s", err);
		st = OE_HOOK_FAIL;
		goto out;
	}
	st = OE_HOOK_OK;
	goto out;
nomem:
	snprintf(job->error, sizeof(job->error), "webhook: out of memory");
out:
	hdrs_clear(&hs);
	if (st != OE_HOOK_OK)
		request_free(rq);
	return st;
}

/* ---- HTTP ---- */

struct wh_reply {
	char text[WH_REPLY_MAX];
	size_t len;
};

static size_t
reply_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wh_reply *r = arg;
	size_t n = size * nmemb, room = sizeof(r->text) - 1 - r->len;

	if (room > n)
		room = n;
	memcpy(r->text + r->len, data, room);
	r->len += room;
	r->text[r->len] = '\0';
	return n;
}

/* The first non-empty line of an answer's body, control bytes dropped. */
static void
reply_line(const struct wh_reply *r, char *out, size_t outlen)
{
	const char *p = r->text;
	size_t n = 0;

	while (*p == '\r' || *p == '\n' || *p == ' ' || *p == '\t')
		p++;
	for (; *p && *p != '\r' && *p != '\n' && n + 1 < outlen; p++)
		if ((unsigned char)*p >= 0x20 && *p != 0x7f)
			out[n++] = *p;
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Once per process: the webhook's deliveries may run in a thread of
 * their own while another handler's use OpenSSL. */
static void
global_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, curl_init_once);
}

/* POST rq on c; the HTTP status in *code (0 when there was no answer). */
static CURLcode
wh_perform(CURL *c, const struct wh_request *rq, long *code, struct wh_reply *reply,
	   char errbuf[CURL_ERROR_SIZE])
{
	struct curl_slist *list = NULL, *l;
	CURLcode rc = CURLE_OUT_OF_MEMORY;

	*code = 0;
	*errbuf = '\0';
	reply->len = 0;
	reply->text[0] = '\0';
	for (size_t i = 0; i < rq->nhdr; i++) {
		if ((l = curl_slist_append(list, rq->hdr[i])) == NULL)
			goto out;
		list = l;
	}
	/* No "Expect: 100-continue" round trip before the body. */
	if ((l = curl_slist_append(list, "Expect:")) == NULL)
		goto out;
	list = l;

	curl_easy_reset(c); /* the connection cache stays */
	if ((rc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_URL, rq->url)) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https")) != CURLE_OK ||
#else
	    (rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS,
				   (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS))) != CURLE_OK ||
#endif
	    (rc = curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_TIMEOUT, rq->timeout)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, rq->timeout)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L)) != CURLE_OK ||
	    (rq->ca_file && (rc = curl_easy_setopt(c, CURLOPT_CAINFO, rq->ca_file)) != CURLE_OK) ||
	    (rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, list)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				   (curl_off_t)strlen(rq->body))) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, reply_write)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, reply)) != CURLE_OK)
		goto out;
	if ((rc = curl_easy_perform(c)) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
out:
	/* The handle must not keep pointers into what is freed here. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(list);
	return rc;
}

/*
 * Whether the failure says the endpoint cannot be reached at all (no
 * address, no connection, no TLS session), rather than that it answered
 * this one request badly: its other jobs of the pass would each wait out
 * the same timeout in turn, holding up the pass and every event after it.
 */
static bool
endpoint_down(CURL *c, CURLcode rc)
{
	long sent = 0;

	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	case CURLE_OPERATION_TIMEDOUT:
		/* Down if the request never went out; the connect time says
		 * nothing on a connection kept from an earlier job (0). */
		return curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent == 0;
	default:
		return false;
	}
}

/* Run one job on c (NULL: libcurl could not start); true when its
 * endpoint turned out to be unreachable. */
static bool
wh_run(const oe_hook_host *h, CURL *c, oe_hook_job *job, bool pre)
{
	bool down = false;
	struct wh_request rq;
	struct wh_reply reply;
	char errbuf[CURL_ERROR_SIZE], line[200];
	CURLcode rc;
	long code;

	*job->error = '\0';
	if ((job->status = request_build(h, job, &rq)) != OE_HOOK_OK) {
		if (pre)
			job->status = OE_HOOK_FAIL;
		return false;
	}
	if (c == NULL) {
		job->status = pre ? OE_HOOK_FAIL : OE_HOOK_RETRY;
		snprintf(job->error, sizeof(job->error), "webhook %.120s: libcurl did not start",
			 rq.shown);
		goto out;
	}
	rc = wh_perform(c, &rq, &code, &reply, errbuf);
	reply_line(&reply, line, sizeof(line));
	if (rc != CURLE_OK) {
		job->status = pre || rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ?
				      OE_HOOK_FAIL :
				      OE_HOOK_RETRY;
		snprintf(job->error, sizeof(job->error), "webhook %.120s: %.120s", rq.shown,
			 *errbuf ? errbuf : curl_easy_strerror(rc));
		down = endpoint_down(c, rc);
	} else if (code >= 200 && code < 300) {
		job->status = OE_HOOK_OK;
	} else if (pre) {
		job->status = OE_HOOK_FAIL;
		if (*line)
			snprintf(job->error, sizeof(job->error), "%s", line);
		else
			snprintf(job->error, sizeof(job->error), "webhook %.120s: HTTP %ld", rq.shown,
				 code);
	} else {
		job->status = code >= 500 || code == 408 || code == 429 ? OE_HOOK_RETRY :
									  OE_HOOK_FAIL;
		snprintf(job->error, sizeof(job->error), "webhook %.120s: HTTP %ld%s%.96s", rq.shown,
			 code, *line ? ": " : "", line);
	}
out:
	request_free(&rq);
	return down;
}

/* The scheme, host and port of url ("https://h:8443"), without any
 * user or password, cut to fit. */
static void
origin_of(const char *url, char *out, size_t len)
{
	const char *auth = strstr(url, "://"), *at, *end;

	if (auth == NULL) {
		snprintf(out, len, "%s", url);
		return;
	}
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	at = memrchr(auth, '@', (size_t)(end - auth));
	snprintf(out, len, "%.*s%.*s", (int)(auth - url), url, (int)(end - (at ? at + 1 : auth)),
		 at ? at + 1 : auth);
}

/* ---- the ops ---- */

static int
wh_check(const oe_hook_host *h, const oe_hook_job *job, char *err, size_t errlen)
{
	const char *ca_file = h->option(job, "ca_file");
	struct wh_hdrs hs;
	long timeout;

	if ((h->option(job, "url") &&
	     url_tags_check(h->option(job, "url"), err, errlen) != 0) ||
	    url_check(h->option(job, "url"), err, errlen) != 0)
		return -1;
	if (hopt_timeout(h->option(job, "timeout"), &timeout) != 0) {
		snprintf(err, errlen, "option.timeout: not a number of seconds from 1 to %d",
			 HOPT_TIMEOUT_MAX);
		return -1;
	}
	if (ca_file && access(ca_file, R_OK) != 0) {
		snprintf(err, errlen, "option.ca_file: %s: %s", ca_file, strerror(errno));
		return -1;
	}
	if (hdrs_parse(&hs, h->option(job, "headers"), err, errlen) != 0)
		return -1;
	hdrs_clear(&hs);
	return 0;
}

/*
 * The jobs one after another; once an endpoint proves unreachable, its
 * later jobs of this pass are not tried but retried with the others'
 * backoff, as a mail server that is down fails all its mails at once.
 */
static void
wh_deliver(const oe_hook_host *h, oe_hook_job *jobs, size_t n)
{
	struct {
		char origin[160];
		long timeout; /* of the job that found it down */
	} *down = calloc(n ? n : 1, sizeof(*down));
	char origin[160];
	size_t ndown = 0;
	CURL *c;

	global_init();
	c = curl_easy_init();
	for (size_t i = 0; i < n; i++) {
		const char *url = h->option(&jobs[i], "url");
		long timeout = HOPT_TIMEOUT_DEFAULT;
		size_t k = 0;

		origin_of(url ? url : "", origin, sizeof(origin));
		(void)hopt_timeout(h->option(&jobs[i], "timeout"), &timeout);
		/* A rule that waits longer than the one that gave up is
		 * still tried. */
		while (k < ndown && (strcmp(down[k].origin, origin) != 0 || timeout > down[k].timeout))
			k++;
		if (k < ndown) {
			jobs[i].status = OE_HOOK_RETRY;
			snprintf(jobs[i].error, sizeof(jobs[i].error),
				 "webhook %.120s: not tried, unreachable earlier in this pass", origin);
			continue;
		}
		if (wh_run(h, c, &jobs[i], false) && down) {
			memcpy(down[ndown].origin, origin, sizeof(origin));
			down[ndown++].timeout = timeout;
		}
	}
	if (c)
		curl_easy_cleanup(c);
	free(down);
}

static void
wh_pre(const oe_hook_host *h, oe_hook_job *job)
{
	CURL *c;

	global_init();
	c = curl_easy_init();
	(void)wh_run(h, c, job, true);
	if (c)
		curl_easy_cleanup(c);
}

static char *
wh_preview(const oe_hook_host *h, oe_hook_job *job)
{
	struct wh_request rq;
	struct hbuf b = HBUF_INIT(WH_TEXT_MAX);
	char *text;

	*job->error = '\0';
	if ((job->status = request_build(h, job, &rq)) != OE_HOOK_OK)
		return NULL;
	hbuf_str(&b, "POST ");
	hbuf_str(&b, rq.shown);
	hbuf_str(&b, "\n");
	for (size_t i = 0; i < rq.nhdr; i++) {
		hbuf_str(&b, rq.hdr[i]);
		hbuf_str(&b, "\n");
	}
	hbuf_str(&b, "\n");
	hbuf_str(&b, rq.body);
	hbuf_str(&b, "\n");
	request_free(&rq);
	if ((text = hbuf_take(&b)) == NULL)
		snprintf(job->error, sizeof(job->error), "webhook: out of memory");
	return text;
}

const struct oe_handler_ops oe_handler = {
	.name = "webhook",
	.abi = OE_HANDLER_ABI,
	.actions = wh_actions,
	.options = wh_options,
	.check = wh_check,
	.deliver = wh_deliver,
	.pre = wh_pre,
	.preview = wh_preview,
};
