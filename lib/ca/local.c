/*
 * local.c - the in-process CA.
 *
 * Signs with OpenSSL 3's X509 API directly: no `openssl ca` process, no
 * index.txt to lock and rewrite.  The CA certificate and key live in the
 * section's `dir` (ca.pem, ca.key); the key is a PKCS#8 file encrypted
 * with a passphrase derived from the store key, so a copy of the
 * directory alone signs nothing.  What the CA issued and revoked is
 * recorded in the store (local_ca_certs), which is what CRLs and
 * `ca sync` are built from.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "internal.h"
#include "cfg.h"
#include "store/store.h"
#include "util.h"

#define CA_FILE_MAX (64 * 1024)

/* The extensions every issued certificate carries, built once per CA. */
enum { EXT_BC, EXT_KU_EC, EXT_KU_RSA, EXT_EKU, EXT_AKI, EXT_COUNT };

struct local_ca {
	struct ca_conn base;
	char *dir;
	int manual;
	unsigned validity_days;
	X509 *cert;
	EVP_PKEY *key;
	X509_EXTENSION *ext[EXT_COUNT];
	EVP_MD *md; /* fetched once; NULL for Ed25519 keys */
};

/*
 * CA keys kept by oe_ca_preload() for this process and its forked
 * children: otpenrolld preloads before it forks a session per client, so
 * a session does not decrypt ca.key (PBKDF2) again.  An entry serves only
 * the same CA name, the same ca.pem and ca.key (device, inode, size,
 * mtime, ctime) and the same passphrase, so a replaced or rewritten
 * ca.key, or another store key, is read afresh.  Entries live as long as
 * the process.
 */
#define KEPT_MAX 16

static struct kept {
	char *name;
	struct stat pem_st, key_st;
	unsigned char pass[32]; /* SHA-256 of the passphrase */
	X509 *cert;
	EVP_PKEY *pkey;
} kept[KEPT_MAX];
static size_t nkept;

static void
path_of(const struct local_ca *ca, const char *file, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", ca->dir, file);
}

/* The passphrase protecting ca.key: HMAC(store key, CA name). */
static int
key_passphrase(const oe_ctx *ctx, const char *name, char out[65])
{
	static const char label[] = "otpenroll local CA key: ";
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "%s%s", label, name);

	if (!ctx->have_key || n < 0 || (size_t)n >= sizeof(msg))
		return -1;
	if (HMAC(EVP_sha256(), ctx->key, OE_KEY_LEN, (unsigned char *)msg, (size_t)n,
		 mac, &maclen) == NULL)
		return -1;
	util_hex(mac, sizeof(mac), out);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

static const char *
ossl_err(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/* Drop what load() got, whole or in part. */
static void
unload(struct local_ca *ca)
{
	for (int i = 0; i < EXT_COUNT; i++) {
		X509_EXTENSION_free(ca->ext[i]);
		ca->ext[i] = NULL;
	}
	EVP_MD_free(ca->md);
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	ca->md = NULL;
	ca->cert = NULL;
	ca->key = NULL;
}

static void
local_close(struct ca_conn *conn)
{
	struct local_ca *ca = (struct local_ca *)conn;

	if (ca == NULL)
		return;
	unload(ca);
	free(ca->dir);
	free(ca->base.name);
	free(ca);
}

static oe_rc
local_open(oe_ctx *ctx, const char *name, const struct cfg_section *sec,
	   struct ca_conn **out)
{
	char section[128];
	struct local_ca *ca;
	const char *dir;

	*out = NULL;
	snprintf(section, sizeof(section), "ca %s", name);
	if ((dir = cfg_get(ctx->cfg, section, "dir")) == NULL)
		return ctx_fail(ctx, OE_ECONFIG, "%s line %d: [%s] needs dir",
				ctx->cfg->path, sec->line, section);
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	ca->base.ops = &ca_local_ops;
	ca->base.ctx = ctx;
	ca->base.name = strdup(name);
	ca->dir = strdup(dir);
	ca->manual = strcmp(cfg_str(ctx->cfg, section, "approval", "auto"), "manual") == 0;
	ca->validity_days = (unsigned)cfg_uint(ctx->cfg, section, "validity_days", 365);
	if (ca->base.name == NULL || ca->dir == NULL) {
		local_close(&ca->base);
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	}
	*out = &ca->base;
	return OE_OK;
}

/* Read a small file we own into a memory BIO. */
static BIO *
read_ca_file(oe_ctx *ctx, const char *path, int secret, oe_rc *rc)
{
	unsigned char *buf;
	size_t len;
	BIO *bio = NULL;

	*rc = ctx_read_file(ctx, NULL, path, CA_FILE_MAX, secret ? READ_SECRET : READ_NOFOLLOW,
			    OE_EIO, &buf, &len);
	if (*rc != OE_OK) {
		char why[sizeof(ctx->errmsg)];

		/* Not there at all: the CA was never made. */
		if (access(path, F_OK) != 0 && errno == ENOENT) {
			snprintf(why, sizeof(why), "%s", ctx->errmsg);
			*rc = ctx_fail(ctx, OE_ENOTFOUND, "%s (run `otpenroll ca init`)", why);
		}
		return NULL;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL || BIO_write(bio, buf, (int)len) != (int)len) {
		BIO_free(bio);
		bio = NULL;
		*rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
	}
	util_free_secret(buf, len + 1);
	return bio;
}

static X509_EXTENSION *
make_ext(X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, NULL, NULL, NULL, 0);
	return X509V3_EXT_conf_nid(NULL, &v3, nid, value);
}

/*
 * What every certificate of this CA shares, made once: parsing extension
 * strings and looking up the digest per certificate cost more than
 * signing it.
 */
static oe_rc
prepare(struct local_ca *ca)
{
	ca->ext[EXT_BC] = make_ext(ca->cert, NID_basic_constraints, "critical,CA:FALSE");
	ca->ext[EXT_KU_EC] = make_ext(ca->cert, NID_key_usage, "critical,digitalSignature");
	ca->ext[EXT_KU_RSA] = make_ext(ca->cert, NID_key_usage,
				       "critical,digitalSignature,keyEncipherment");
	ca->ext[EXT_EKU] = make_ext(ca->cert, NID_ext_key_usage, "clientAuth");
	ca->ext[EXT_AKI] = make_ext(ca->cert, NID_authority_key_identifier, "keyid:always");
	for (int i = 0; i < EXT_COUNT; i++)
		if (ca->ext[i] == NULL)
			return ctx_fail(ca->base.ctx, OE_ECRYPTO,
					"[ca %s] cannot prepare extensions: %s", ca->base.name,
					ossl_err());
	if (EVP_PKEY_get_id(ca->key) != EVP_PKEY_ED25519 &&
	    (ca->md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return ctx_fail(ca->base.ctx, OE_ECRYPTO, "SHA-256 unavailable: %s", ossl_err());
	return OE_OK;
}

/*
 * The request's SubjectPublicKeyInfo, copied as it stands.  Setting it
 * from the request's EVP_PKEY instead runs OpenSSL 3's encoder and then
 * its decoder on the key, which cost more than signing the certificate.
 * The copy carries no decoded key: X509_get0_pubkey() of the result is
 * NULL until the certificate is parsed again.
 */
static int
copy_spki(X509 *cert, const X509_ALGOR *a, const ASN1_BIT_STRING *bits)
{
	ASN1_OBJECT *alg = NULL;
	const ASN1_OBJECT *oid;
	unsigned char *copy = NULL;
	const void *pval;
	void *param = NULL;
	int ptype;

	if (a == NULL || bits == NULL || bits->length <= 0)
		return 0;
	X509_ALGOR_get0(&oid, &ptype, &pval, a);
	/* Only the shapes a key we accept has: a BOOLEAN's value, say, is
	 * no pointer at all. */
	if (ptype == V_ASN1_OBJECT)
		param = OBJ_dup(pval);
	else if (ptype == V_ASN1_SEQUENCE)
		param = ASN1_STRING_dup(pval);
	else if (ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL)
		return 0;
	if ((param == NULL && ptype != V_ASN1_UNDEF && ptype != V_ASN1_NULL) ||
	    (alg = OBJ_dup(oid)) == NULL ||
	    (copy = OPENSSL_memdup(bits->data, (size_t)bits->length)) == NULL ||
	    !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), alg, ptype, param, copy,
				    bits->length)) {
		ASN1_OBJECT_free(alg);
		if (ptype == V_ASN1_OBJECT)
			ASN1_OBJECT_free(param);
		else
			ASN1_STRING_free(param);
		OPENSSL_free(copy);
		return 0;
	}
	return 1;
}

/* The subject key identifier: SHA-1 of the public key (RFC 5280 4.2.1.2). */
static int
add_ski(X509 *cert)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	int ok = os && X509_pubkey_digest(cert, EVP_sha1(), md, &len) &&
		 ASN1_OCTET_STRING_set(os, md, (int)len) &&
		 X509_add1_ext_i2d(cert, NID_subject_key_identifier, os, 0, 0) == 1;

	ASN1_OCTET_STRING_free(os);
	return ok;
}

/* What identifies this CA's files and passphrase for the kept table;
 * -1 when a file is missing or unsafe (load() then says what is wrong). */
static int
identify(struct local_ca *ca, struct stat *pem, struct stat *key, unsigned char pass[32])
{
	char path[4096], phrase[65];
	int ok;

	path_of(ca, "ca.pem", path, sizeof(path));
	if (lstat(path, pem) != 0 || !S_ISREG(pem->st_mode))
		return -1;
	path_of(ca, "ca.key", path, sizeof(path));
	if (lstat(path, key) != 0 || !S_ISREG(key->st_mode) || (key->st_mode & 077))
		return -1;
	if (key_passphrase(ca->base.ctx, ca->base.name, phrase) != 0)
		return -1;
	ok = EVP_Digest(phrase, strlen(phrase), pass, NULL, EVP_sha256(), NULL);
	OPENSSL_cleanse(phrase, sizeof(phrase));
	return ok ? 0 : -1;
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The kept entry for ca as its files are now, or NULL. */
static struct kept *
kept_find(struct local_ca *ca)
{
	struct stat pem, key;
	unsigned char pass[32];
	struct kept *k = NULL;

	if (nkept == 0 || identify(ca, &pem, &key, pass) != 0)
		return NULL;
	for (size_t i = 0; i < nkept && k == NULL; i++)
		if (strcmp(kept[i].name, ca->base.name) == 0 && same_file(&kept[i].pem_st, &pem) &&
		    same_file(&kept[i].key_st, &key) && CRYPTO_memcmp(kept[i].pass, pass, 32) == 0)
			k = &kept[i];
	OPENSSL_cleanse(pass, sizeof(pass));
	return k;
}

/* Load ca.pem and ca.key, once. */
static oe_rc
load(struct local_ca *ca)
{
	oe_ctx *ctx = ca->base.ctx;
	char path[4096], pass[65];
	struct kept *k;
	BIO *bio;
	oe_rc rc;

	if (ca->cert && ca->key && ca->ext[EXT_COUNT - 1])
		return OE_OK;
	unload(ca); /* what an earlier try left */
	if ((k = kept_find(ca)) != NULL && X509_up_ref(k->cert)) {
		if (!EVP_PKEY_up_ref(k->pkey)) {
			X509_free(k->cert);
		} else {
			ca->cert = k->cert;
			ca->key = k->pkey;
			return prepare(ca);
		}
	}
	path_of(ca, "ca.pem", path, sizeof(path));
	if ((bio = read_ca_file(ctx, path, 0, &rc)) == NULL)
		return rc;
	ca->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (ca->cert == NULL)
		return ctx_fail(ctx, OE_EPARSE, "%s: not a PEM certificate: %s", path, ossl_err());
	path_of(ca, "ca.key", path, sizeof(path));
	if ((bio = read_ca_file(ctx, path, 1, &rc)) == NULL)
		return rc;
	if (key_passphrase(ctx, ca->base.name, pass) != 0) {
		BIO_free(bio);
		return ctx_fail(ctx, OE_EKEY, "store key not loaded");
	}
	ca->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, pass);
	OPENSSL_cleanse(pass, sizeof(pass));
	BIO_free(bio);
	if (ca->key == NULL)
		return ctx_fail(ctx, OE_EKEY,
				"%s does not open with the store key (another store's CA?): %s",
				path, ossl_err());
	if (X509_check_private_key(ca->cert, ca->key) != 1)
		return ctx_fail(ctx, OE_EKEY, "%s does not belong to ca.pem", path);
	return prepare(ca);
}

/* A random positive serial of at most 20 octets (RFC 5280 4.1.2.2). */
static int
random_serial(ASN1_INTEGER **out)
{
	unsigned char b[20];
	BIGNUM *bn = NULL;

	*out = NULL;
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] &= 0x7f; /* positive, so the DER encoding stays within 20 octets */
	b[0] |= 0x01; /* and never shorter than it looks */
	if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL)
		return -1;
	*out = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return *out ? 0 : -1;
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* Ed25519 signs without a separate digest. */
static const EVP_MD *
sign_md(EVP_PKEY *key)
{
	return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
}

static char *
serial_hex(const ASN1_INTEGER *serial)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL, *copy;

	BN_free(bn);
	copy = util_strdup(hex);
	OPENSSL_free(hex);
	return copy;
}

static oe_rc
record_issued(struct local_ca *ca, X509 *cert, const char *token_serial)
{
	oe_ctx *ctx = ca->base.ctx;
	struct store *st;
	char *hex = serial_hex(X509_get0_serialNumber(cert));
	char subject[512];
	time_t not_after = 0;
	oe_rc rc;

	if (hex == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
	{
		struct tm tm;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
			not_after = timegm(&tm);
	}
	if ((rc = ctx_store(ctx, &st)) != OE_OK)
		goto out;
	{
		struct store_val arg[] = {
			SV_T(ca->base.name), SV_T(hex), SV_T(token_serial), SV_T(subject),
			SV_I(time(NULL)), SV_I(not_after),
		};
		rc = store_exec(st,
				"INSERT INTO local_ca_certs (ca, serial, token, subject, issued, not_after)"
				" VALUES (?, ?, ?, ?, ?, ?)",
				arg, 6, NULL);
		if (rc != OE_OK)
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
	}
out:
	free(hex);
	return rc;
}

/*
 * Sign now (auto approval, or `ca approve` of a manual request).  The
 * store is not touched: local_record() writes what was issued, in the
 * caller's transaction.
 */
static oe_rc
local_issue(struct ca_conn *conn, const struct ca_request *req, X509 **out)
{
	struct local_ca *ca = (struct local_ca *)conn;
	oe_ctx *ctx = conn->ctx;
	ASN1_INTEGER *serial = NULL;
	EVP_PKEY *pub = req->pub;
	X509 *cert = NULL;
	X509_EXTENSION *ku;
	oe_rc rc;

	*out = NULL;
	if ((rc = load(ca)) != OE_OK)
		return rc;
	if (pub == NULL)
		return ctx_fail(ctx, OE_EPARSE, "request has no public key");
	/* A certificate outliving its issuer would not verify then: an
	 * expired CA signs nothing, and validity_days ends at the CA's end. */
	if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0)
		return ctx_fail(ctx, OE_ECONFIG, "[ca %s] its certificate (%s/ca.pem) has expired;"
				" make a new CA with `otpenroll ca init`", conn->name, ca->dir);
	/* keyEncipherment only where the key can encipher (RSA). */
	ku = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA ? ca->ext[EXT_KU_RSA] : ca->ext[EXT_KU_EC];
	if ((cert = X509_new()) == NULL || random_serial(&serial) != 0 ||
	    !X509_set_version(cert, X509_VERSION_3) ||
	    !X509_set_serialNumber(cert, serial) ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) ||
	    !X509_set_subject_name(cert, req->subject) ||
	    !copy_spki(cert, req->spki_alg, req->spki_key) ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -300) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), (int)ca->validity_days, 0, NULL) == NULL ||
	    (ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(ca->cert)) > 0 &&
	     !X509_set1_notAfter(cert, X509_get0_notAfter(ca->cert))) ||
	    !X509_add_ext(cert, ca->ext[EXT_BC], -1) || !X509_add_ext(cert, ku, -1) ||
	    !X509_add_ext(cert, ca->ext[EXT_EKU], -1) || !add_ski(cert) ||
	    !X509_add_ext(cert, ca->ext[EXT_AKI], -1) ||
	    X509_sign(cert, ca->key, ca->md) <= 0) {
		rc = ctx_fail(ctx, OE_ECRYPTO, "[ca %s] cannot sign: %s", conn->name, ossl_err());
		goto out;
	}
	*out = cert;
	cert = NULL;
out:
	ASN1_INTEGER_free(serial);
	X509_free(cert);
	return rc;
}

static oe_rc
local_submit(struct ca_conn *conn, const struct ca_request *req,
	     struct ca_reply *reply)
{
	struct local_ca *ca = (struct local_ca *)conn;
	oe_rc rc;

	memset(reply, 0, sizeof(*reply));
	if (ca->manual) {
		/* Waits for `otpenroll ca approve`; nothing to poll. */
		reply->result = CA_PENDING;
		reply->cookie = strdup("manual");
		reply->delay = 0;
		snprintf(reply->message, sizeof(reply->message),
			 "waiting for an administrator's approval");
		return reply->cookie ? OE_OK : OE_ENOMEM;
	}
	rc = local_issue(conn, req, &reply->cert);
	if (rc == OE_ENOTFOUND || rc == OE_EKEY || rc == OE_EPARSE) {
		reply->result = CA_UNCONFIGURED;
		snprintf(reply->message, sizeof(reply->message), "%s", oe_ctx_errmsg(conn->ctx));
		return OE_OK;
	}
	/* Any other failure fails the request whole: there is no one to
	 * ask again later, so no token is kept for it. */
	if (rc != OE_OK)
		return rc;
	reply->result = CA_ISSUED;
	if (X509_up_ref(ca->cert))
		reply->issuer = ca->cert;
	return OE_OK;
}

static oe_rc
local_record(struct ca_conn *conn, const struct ca_request *req, X509 *cert)
{
	return record_issued((struct local_ca *)conn, cert, req->token_serial);
}

/* oe_ca_preload(): load now, and keep the key for this process's children. */
static oe_rc
local_preload(struct ca_conn *conn)
{
	struct local_ca *ca = (struct local_ca *)conn;
	struct stat pem, key, pem2, key2;
	unsigned char pass[32];
	struct kept *k;
	oe_rc rc;

	/* The files as they were before and after loading: a CA replaced
	 * meanwhile is not kept under either identity. */
	if (identify(ca, &pem, &key, pass) != 0)
		return load(ca); /* says what is wrong */
	if ((rc = load(ca)) != OE_OK || kept_find(ca) != NULL || nkept == KEPT_MAX)
		goto out;
	if (identify(ca, &pem2, &key2, pass) != 0 || !same_file(&pem, &pem2) ||
	    !same_file(&key, &key2))
		goto out;
	k = &kept[nkept];
	if ((k->name = strdup(conn->name)) == NULL || !X509_up_ref(ca->cert)) {
		free(k->name);
		k->name = NULL;
		goto out;
	}
	if (!EVP_PKEY_up_ref(ca->key)) {
		X509_free(ca->cert);
		free(k->name);
		k->name = NULL;
		goto out;
	}
	k->pem_st = pem;
	k->key_st = key;
	memcpy(k->pass, pass, sizeof(pass));
	k->cert = ca->cert;
	k->pkey = ca->key;
	nkept++;
out:
	OPENSSL_cleanse(pass, sizeof(pass));
	return rc;
}

/* `ca approve`: only what local_submit left waiting for an administrator. */
static oe_rc
local_approve(struct ca_conn *conn, const char *cookie, const struct ca_request *req,
	      struct ca_reply *reply)
{
	struct local_ca *ca = (struct local_ca *)conn;
	oe_rc rc;

	memset(reply, 0, sizeof(*reply));
	if (cookie == NULL || strcmp(cookie, "manual") != 0)
		return ctx_fail(conn->ctx, OE_EPERM, "token %s is not held for approval by [ca %s]",
				req->token_serial, conn->name);
	if ((rc = local_issue(conn, req, &reply->cert)) != OE_OK)
		return rc;
	reply->result = CA_ISSUED;
	if (X509_up_ref(ca->cert))
		reply->issuer = ca->cert;
	return OE_OK;
}

static oe_rc
local_poll(struct ca_conn *conn, const char *cookie, const struct ca_request *req,
	   struct ca_reply *reply)
{
	(void)conn;
	(void)req;
	memset(reply, 0, sizeof(*reply));
	reply->result = CA_PENDING;
	reply->cookie = strdup(cookie);
	snprintf(reply->message, sizeof(reply->message), "waiting for an administrator's approval");
	return reply->cookie ? OE_OK : OE_ENOMEM;
}

static oe_rc
local_revoke(struct ca_conn *conn, X509 *cert, int reason)
{
	oe_ctx *ctx = conn->ctx;
	struct store *st;
	char *hex = serial_hex(X509_get0_serialNumber(cert));
	int64_t changes = 0;
	oe_rc rc;

	if (hex == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	if ((rc = ctx_store(ctx, &st)) == OE_OK) {
		struct store_val arg[] = {
			SV_I(time(NULL)), SV_I(reason), SV_T(conn->name), SV_T(hex),
		};
		rc = store_exec(st,
				"UPDATE local_ca_certs SET revoked = ?, reason = ?"
				" WHERE ca = ? AND serial = ? AND revoked = 0",
				arg, 4, &changes);
		if (rc != OE_OK)
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
		else if (changes != 1)
			rc = ctx_fail(ctx, OE_ENOTFOUND,
				      "[ca %s] has no unrevoked certificate with serial %s",
				      conn->name, hex);
	}
	free(hex);
	return rc;
}

struct status_row {
	int found;
	int64_t revoked, reason;
};

static int
status_fill(void *arg, const struct store_val *col, int ncol)
{
	struct status_row *r = arg;

	if (ncol < 2)
		return 1;
	r->found = 1;
	r->revoked = col[0].i;
	r->reason = col[1].i;
	return 1;
}

/* `ca sync`: what this CA's own records say of a certificate. */
static oe_rc
local_status(struct ca_conn *conn, X509 *cert, struct ca_status *out)
{
	oe_ctx *ctx = conn->ctx;
	struct status_row r = { 0 };
	struct store *st;
	char *hex;
	oe_rc rc;

	memset(out, 0, sizeof(*out));
	if ((hex = serial_hex(X509_get0_serialNumber(cert))) == NULL)
		return ctx_fail(ctx, OE_ENOMEM, "out of memory");
	if ((rc = ctx_store(ctx, &st)) == OE_OK) {
		struct store_val arg[] = { SV_T(conn->name), SV_T(hex) };
		rc = store_query(st, "SELECT revoked, reason FROM local_ca_certs WHERE ca = ? AND serial = ?",
				 arg, 2, status_fill, &r);
		if (rc != OE_OK)
			ctx_fail(ctx, rc, "%s", store_errmsg(st));
	}
	free(hex);
	if (rc != OE_OK)
		return rc;
	if (!r.found) {
		out->state = CA_CERT_UNKNOWN;
		snprintf(out->message, sizeof(out->message), "not in [ca %s]'s records", conn->name);
	} else if (r.revoked != 0) {
		out->state = CA_CERT_REVOKED;
		out->reason = (int)r.reason;
		out->revoked_at = (time_t)r.revoked;
	} else {
		out->state = CA_CERT_VALID;
	}
	return OE_OK;
}

struct crl_fill {
	X509_CRL *crl;
	int bad;
};

static int
crl_row(void *arg, const struct store_val *col, int ncol)
{
	struct crl_fill *f = arg;
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_TIME *when = ASN1_TIME_set(NULL, (time_t)col[1].i);
	ASN1_ENUMERATED *code = ASN1_ENUMERATED_new();
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;

	if (ncol < 3 || rev == NULL || when == NULL || code == NULL ||
	    !BN_hex2bn(&bn, col[0].s) || (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    !X509_REVOKED_set_serialNumber(rev, serial) ||
	    !X509_REVOKED_set_revocationDate(rev, when) ||
	    !ASN1_ENUMERATED_set(code, (long)col[2].i) ||
	    (col[2].i != 0 && !X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, code, 0, 0)) ||
	    !X509_CRL_add0_revoked(f->crl, rev)) {
		X509_REVOKED_free(rev);
		f->bad = 1;
	}
	ASN1_TIME_free(when);
	ASN1_ENUMERATED_free(code);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return f->bad;
}

static oe_rc
local_crl(struct ca_conn *conn, int der, unsigned char **out, size_t *len)
{
	struct local_ca *ca = (struct local_ca *)conn;
	oe_ctx *ctx = conn->ctx;
	struct crl_fill f = { 0 };
	char meta[160], num[32], *have = NULL;
	ASN1_INTEGER *number = NULL;
	ASN1_TIME *now = NULL, *next = NULL;
	struct store *st;
	BIO *bio = NULL;
	BUF_MEM *mem;
	long n = 0;
	oe_rc rc;

	*out = NULL;
	*len = 0;
	if ((rc = load(ca)) != OE_OK || (rc = ctx_store(ctx, &st)) != OE_OK)
		return rc;
	snprintf(meta, sizeof(meta), "local_ca:%s:crlnumber", conn->name);
	/* The CRL number only moves forward, in the store's own transaction. */
	if ((rc = store_begin(st)) != OE_OK)
		return ctx_fail(ctx, rc, "%s", store_errmsg(st));
	if ((rc = store_meta_get(st, meta, &have)) != OE_OK)
		goto bad_store;
	n = have ? strtol(have, NULL, 10) + 1 : 1;
	free(have);
	snprintf(num, sizeof(num), "%ld", n);
	if ((rc = store_meta_set(st, meta, num)) != OE_OK)
		goto bad_store;
	f.crl = X509_CRL_new();
	now = ASN1_TIME_set(NULL, time(NULL));
	next = ASN1_TIME_set(NULL, time(NULL) + 7 * 86400);
	number = ASN1_INTEGER_new();
	if (f.crl == NULL || now == NULL || next == NULL || number == NULL ||
	    !X509_CRL_set_version(f.crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(f.crl, X509_get_subject_name(ca->cert)) ||
	    !X509_CRL_set1_lastUpdate(f.crl, now) || !X509_CRL_set1_nextUpdate(f.crl, next) ||
	    !ASN1_INTEGER_set(number, n) ||
	    !X509_CRL_add1_ext_i2d(f.crl, NID_crl_number, number, 0, 0)) {
		rc = ctx_fail(ctx, OE_ECRYPTO, "cannot build a CRL: %s", ossl_err());
		goto bad;
	}
	{
		struct store_val arg[] = { SV_T(conn->name) };
		rc = store_query(st,
				 "SELECT serial, revoked, reason FROM local_ca_certs"
				 " WHERE ca = ? AND revoked > 0 ORDER BY revoked, serial",
				 arg, 1, crl_row, &f);
		if (rc != OE_OK)
			goto bad_store;
		if (f.bad) {
			rc = ctx_fail(ctx, OE_ECRYPTO, "cannot add an entry to the CRL: %s", ossl_err());
			goto bad;
		}
	}
	{
		X509V3_CTX v3;
		X509_EXTENSION *aki;
		X509V3_set_ctx_nodb(&v3);
		X509V3_set_ctx(&v3, ca->cert, NULL, NULL, f.crl, 0);
		aki = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier, "keyid:always");
		if (aki == NULL || !X509_CRL_add_ext(f.crl, aki, -1)) {
			X509_EXTENSION_free(aki);
			rc = ctx_fail(ctx, OE_ECRYPTO, "cannot add the CRL's AKI: %s", ossl_err());
			goto bad;
		}
		X509_EXTENSION_free(aki);
	}
	if (!X509_CRL_sort(f.crl) || X509_CRL_sign(f.crl, ca->key, sign_md(ca->key)) <= 0 ||
	    (bio = BIO_new(BIO_s_mem())) == NULL ||
	    !(der ? i2d_X509_CRL_bio(bio, f.crl) : PEM_write_bio_X509_CRL(bio, f.crl))) {
		rc = ctx_fail(ctx, OE_ECRYPTO, "cannot sign the CRL: %s", ossl_err());
		goto bad;
	}
	if ((rc = store_commit(st)) != OE_OK) {
		ctx_fail(ctx, rc, "%s", store_errmsg(st));
		goto out;
	}
	BIO_get_mem_ptr(bio, &mem);
	if ((*out = malloc(mem->length)) == NULL) {
		rc = ctx_fail(ctx, OE_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*out, mem->data, mem->length);
	*len = mem->length;
	goto out;
bad_store:
	ctx_fail(ctx, rc, "%s", store_errmsg(st));
bad:
	store_rollback(st);
out:
	BIO_free(bio);
	X509_CRL_free(f.crl);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	ASN1_INTEGER_free(number);
	return rc;
}

static oe_rc
local_check(struct ca_conn *conn, char *buf, size_t len)
{
	struct local_ca *ca = (struct local_ca *)conn;
	char subject[256];
	struct tm tm;
	oe_rc rc;

	if ((rc = load(ca)) != OE_OK)
		return rc;
	X509_NAME_oneline(X509_get_subject_name(ca->cert), subject, sizeof(subject));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(ca->cert), &tm) != 1)
		memset(&tm, 0, sizeof(tm));
	snprintf(buf, len, "local CA %s: %s, valid until %04d-%02d-%02d, key opens with the store key",
		 conn->name, subject, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0)
		return ctx_fail(conn->ctx, OE_ECRYPTO, "[ca %s] certificate has expired", conn->name);
	return OE_OK;
}

/* Write a file that must not exist yet, durably. */
static oe_rc
write_new(oe_ctx *ctx, const char *path, mode_t mode, BIO *bio)
{
	BUF_MEM *mem;
	size_t off = 0;
	int fd;

	BIO_get_mem_ptr(bio, &mem);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return ctx_fail(ctx, errno == EEXIST ? OE_EEXISTS : OE_EIO, "%s: %s", path,
				strerror(errno));
	while (off < mem->length) {
		ssize_t n = write(fd, mem->data + off, mem->length - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off != mem->length || fsync(fd) != 0) {
		int e = errno;
		close(fd);
		unlink(path);
		return ctx_fail(ctx, OE_EIO, "%s: %s", path, strerror(e));
	}
	close(fd);
	return OE_OK;
}

static EVP_PKEY *
new_key(const char *type)
{
	if (strcmp(type, "ec256") == 0)
		return EVP_EC_gen("P-256");
	if (strcmp(type, "ec384") == 0)
		return EVP_EC_gen("P-384");
	if (strcmp(type, "rsa2048") == 0)
		return EVP_RSA_gen(2048);
	if (strcmp(type, "rsa3072") == 0)
		return EVP_RSA_gen(3072);
	return NULL;
}

/* `ca init`: ca.pem and ca.key, neither of which may exist yet. */
static oe_rc
local_init(struct ca_conn *conn, const char *dn, const char *key_type, unsigned days)
{
	struct local_ca *ca = (struct local_ca *)conn;
	oe_ctx *ctx = conn->ctx;
	char err[256], pass[65], path_cert[4096], path_key[4096];
	X509_NAME *name = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	ASN1_INTEGER *serial = NULL;
	BIO *kb = NULL, *cb = NULL;
	oe_rc rc;

	if (key_type == NULL)
		key_type = "ec256";
	if ((name = ca_parse_dn(dn, err, sizeof(err))) == NULL)
		return ctx_fail(ctx, OE_EINVAL, "--subject: %s", err);
	if (mkdir(ca->dir, 0700) != 0 && errno != EEXIST) {
		rc = ctx_fail(ctx, OE_EIO, "%s: %s", ca->dir, strerror(errno));
		goto out;
	}
	path_of(ca, "ca.pem", path_cert, sizeof(path_cert));
	path_of(ca, "ca.key", path_key, sizeof(path_key));
	if (access(path_cert, F_OK) == 0 || access(path_key, F_OK) == 0) {
		rc = ctx_fail(ctx, OE_EEXISTS, "[ca %s] already has a CA in %s", conn->name, ca->dir);
		goto out;
	}
	if ((key = new_key(key_type)) == NULL) {
		rc = ctx_fail(ctx, OE_EINVAL, "key type %s is not one of ec256, ec384, rsa2048, rsa3072",
			      key_type);
		goto out;
	}
	if (key_passphrase(ctx, conn->name, pass) != 0) {
		rc = ctx_fail(ctx, OE_EKEY, "store key not loaded");
		goto out;
	}
	if ((cert = X509_new()) == NULL || random_serial(&serial) != 0 ||
	    !X509_set_version(cert, X509_VERSION_3) || !X509_set_serialNumber(cert, serial) ||
	    !X509_set_issuer_name(cert, name) || !X509_set_subject_name(cert, name) ||
	    !X509_set_pubkey(cert, key) ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -300) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) == NULL ||
	    !add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(cert, cert, NID_subject_key_identifier, "hash") ||
	    !add_ext(cert, cert, NID_authority_key_identifier, "keyid:always") ||
	    X509_sign(cert, key, sign_md(key)) <= 0 ||
	    (kb = BIO_new(BIO_s_mem())) == NULL || (cb = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PKCS8PrivateKey(kb, key, EVP_aes_256_cbc(), NULL, 0, NULL, pass) ||
	    !PEM_write_bio_X509(cb, cert)) {
		rc = ctx_fail(ctx, OE_ECRYPTO, "cannot create the CA: %s", ossl_err());
		goto out;
	}
	if ((rc = write_new(ctx, path_key, 0600, kb)) != OE_OK)
		goto out;
	if ((rc = write_new(ctx, path_cert, 0644, cb)) != OE_OK) {
		unlink(path_key);
		goto out;
	}
out:
	OPENSSL_cleanse(pass, sizeof(pass));
	X509_NAME_free(name);
	EVP_PKEY_free(key);
	X509_free(cert);
	ASN1_INTEGER_free(serial);
	BIO_free(kb);
	BIO_free(cb);
	return rc;
}

/* The CA certificate, loaded on first use. */
static X509 *
local_ca_cert(struct ca_conn *conn)
{
	struct local_ca *ca = (struct local_ca *)conn;
	return load(ca) == OE_OK ? ca->cert : NULL;
}

const struct ca_ops ca_local_ops = {
	.type = "local",
	.in_process = 1,
	.open = local_open,
	.close = local_close,
	.submit = local_submit,
	.poll = local_poll,
	.revoke = local_revoke,
	.crl = local_crl,
	.check = local_check,
	.approve = local_approve,
	.ca_cert = local_ca_cert,
	.init = local_init,
	.preload = local_preload,
	.status = local_status,
	.record = local_record,
};
