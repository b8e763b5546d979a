/*
 * `sessrec-collector ca`: a small cluster CA with GnuTLS's x509 API, so that an
 * operator never hand-rolls openssl commands. ECDSA P-256 keys, SHA-256
 * signatures; the CA is valid 10 years, server and node certificates 2 years
 * (never beyond the CA).
 */
#include "collector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "util.h"

#define CA_YEAR_S	 (365L * 24 * 3600)
#define CA_VALID_S	 (10 * CA_YEAR_S)
#define CA_LEAF_VALID_S	 (2 * CA_YEAR_S)
#define CA_BACKDATE_S	 300 /* tolerate clocks a little behind ours */
#define CA_PEM_MAX	 (64u << 10)
#define CA_NAME_MAX	 64
#define CA_DNS_MAX	 253
#define CA_CN_MAX	 64 /* X.520 upper bound of a common name */
#define CA_CA_CN	 "sessrec CA"
#define CA_ORGANIZATION	 "sessrec"
#define CA_SERVER_CN_DEF "sessrec-collector"

/* A key pair and its certificate being made or loaded. */
struct ca_cert {
	gnutls_x509_privkey_t key;
	gnutls_privkey_t pkey; /* abstract view of key, for signing */
	gnutls_x509_crt_t crt;
};

static void ca_cert_clear(struct ca_cert *c)
{
	if (c->pkey)
		gnutls_privkey_deinit(c->pkey);
	if (c->crt)
		gnutls_x509_crt_deinit(c->crt);
	if (c->key)
		gnutls_x509_privkey_deinit(c->key);
	memset(c, 0, sizeof(*c));
}

/* Turn a GnuTLS failure into -EIO and one line in err. */
static int ca_fail(int rc, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", what, gnutls_strerror(rc));
	return -EIO;
}

bool collector_ca_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > CA_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

static bool ca_dns_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CA_DNS_MAX || s[0] == '.' || s[0] == '-')
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-*") == n;
}

/* Create path exclusively with mode, write data, fsync. 0 or -errno. */
static int ca_write_file(const char *path, const gnutls_datum_t *d, mode_t mode, char *err,
			 size_t errlen)
{
	int fd, ret;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return ret;
	}
	ret = fchmod(fd, mode) < 0 ? -errno : 0;
	if (!ret)
		ret = util_write_all(fd, d->data, d->size);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-ret));
		unlink(path);
	}
	return ret;
}

static int ca_new_key(struct ca_cert *c, char *err, size_t errlen)
{
	int rc;

	rc = gnutls_x509_privkey_init(&c->key);
	if (rc < 0)
		return ca_fail(rc, "private key", err, errlen);
	rc = gnutls_x509_privkey_generate(c->key, GNUTLS_PK_ECDSA,
					  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (rc < 0)
		return ca_fail(rc, "generating an ECDSA P-256 key", err, errlen);
	rc = gnutls_privkey_init(&c->pkey);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509(c->pkey, c->key, 0);
	if (rc < 0)
		return ca_fail(rc, "private key", err, errlen);
	return 0;
}

/* Version, serial, validity, subject, public key and subject key id of a new certificate. */
static int ca_crt_base(struct ca_cert *c, const char *cn, time_t not_after, char *err,
		       size_t errlen)
{
	unsigned char serial[16], kid[64];
	size_t kid_len = sizeof(kid);
	time_t now = time(NULL);
	int rc;

	rc = gnutls_x509_crt_init(&c->crt);
	if (rc < 0)
		return ca_fail(rc, "certificate", err, errlen);
	/* A positive 127-bit serial with a non-zero first byte (RFC 5280 4.1.2.2). */
	rc = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	if (rc < 0)
		return ca_fail(rc, "random serial", err, errlen);
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40);
	rc = gnutls_x509_crt_set_version(c->crt, 3);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_serial(c->crt, serial, sizeof(serial));
	if (rc >= 0)
		rc = gnutls_x509_crt_set_activation_time(c->crt, now - CA_BACKDATE_S);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_expiration_time(c->crt, not_after);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_dn_by_oid(c->crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
						   CA_ORGANIZATION, strlen(CA_ORGANIZATION));
	if (rc >= 0)
		rc = gnutls_x509_crt_set_dn_by_oid(c->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						   (unsigned int)strlen(cn));
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key(c->crt, c->key);
	if (rc >= 0)
		rc = gnutls_x509_crt_get_key_id(c->crt, GNUTLS_KEYID_USE_SHA1, kid, &kid_len);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_subject_key_id(c->crt, kid, kid_len);
	if (rc < 0)
		return ca_fail(rc, "certificate fields", err, errlen);
	return 0;
}

/* Extensions of a leaf signed by ca, and the signature. */
static int ca_crt_leaf_sign(struct ca_cert *leaf, const struct ca_cert *ca, const char *purpose,
			    char *err, size_t errlen)
{
	unsigned char kid[64];
	size_t kid_len = sizeof(kid);
	unsigned int critical = 0;
	int rc;

	rc = gnutls_x509_crt_set_basic_constraints(leaf->crt, 0, -1);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key_usage(leaf->crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key_purpose_oid(leaf->crt, purpose, 0);
	if (rc >= 0)
		rc = gnutls_x509_crt_get_subject_key_id(ca->crt, kid, &kid_len, &critical);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_authority_key_id(leaf->crt, kid, kid_len);
	if (rc < 0)
		return ca_fail(rc, "certificate extensions", err, errlen);
	rc = gnutls_x509_crt_privkey_sign(leaf->crt, ca->crt, ca->pkey, GNUTLS_DIG_SHA256, 0);
	if (rc < 0)
		return ca_fail(rc, "signing the certificate", err, errlen);
	return 0;
}

static int ca_make_ca(struct ca_cert *ca, char *err, size_t errlen)
{
	int ret, rc;

	ret = ca_new_key(ca, err, errlen);
	if (ret)
		return ret;
	ret = ca_crt_base(ca, CA_CA_CN, time(NULL) + CA_VALID_S, err, errlen);
	if (ret)
		return ret;
	/* pathlen 0: it signs servers and nodes, never another CA. */
	rc = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, 0);
	if (rc >= 0)
		rc = gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN |
								GNUTLS_KEY_CRL_SIGN |
								GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (rc < 0)
		return ca_fail(rc, "CA extensions", err, errlen);
	rc = gnutls_x509_crt_privkey_sign(ca->crt, ca->crt, ca->pkey, GNUTLS_DIG_SHA256, 0);
	if (rc < 0)
		return ca_fail(rc, "self-signing the CA", err, errlen);
	return 0;
}

static time_t ca_leaf_not_after(const struct ca_cert *ca)
{
	time_t want = time(NULL) + CA_LEAF_VALID_S;
	time_t ca_end = gnutls_x509_crt_get_expiration_time(ca->crt);

	return ca_end != (time_t)-1 && ca_end < want ? ca_end : want;
}

/* One --host value as a SAN: an IP address (brackets allowed) or a DNS name. */
static int ca_add_san(gnutls_x509_crt_t crt, const char *host, char *err, size_t errlen)
{
	char buf[CA_DNS_MAX + 3];
	unsigned char addr[16];
	size_t n = strlen(host);
	int rc;

	if (n >= sizeof(buf)) {
		snprintf(err, errlen, "--host '%.40s...': too long", host);
		return -EINVAL;
	}
	memcpy(buf, host, n + 1);
	if (n > 2 && buf[0] == '[' && buf[n - 1] == ']') {
		buf[n - 1] = '\0';
		memmove(buf, buf + 1, n - 1);
	}
	if (inet_pton(AF_INET, buf, addr) == 1)
		rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, addr, 4,
							  GNUTLS_FSAN_APPEND);
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, addr, 16,
							  GNUTLS_FSAN_APPEND);
	else if (ca_dns_name_valid(buf))
		rc = gnutls_x509_crt_set_subject_alt_name(
		    crt, GNUTLS_SAN_DNSNAME, buf, (unsigned int)strlen(buf), GNUTLS_FSAN_APPEND);
	else {
		snprintf(err, errlen, "--host '%s': not an IP address or a DNS name", host);
		return -EINVAL;
	}
	if (rc < 0)
		return ca_fail(rc, "subject alternative name", err, errlen);
	return 0;
}

static int ca_make_server(struct ca_cert *srv, const struct ca_cert *ca, const char *const *hosts,
			  size_t n_hosts, char *err, size_t errlen)
{
	const char *cn = CA_SERVER_CN_DEF;
	int ret;

	if (strlen(hosts[0]) <= CA_CN_MAX && ca_dns_name_valid(hosts[0]))
		cn = hosts[0];
	ret = ca_new_key(srv, err, errlen);
	if (!ret)
		ret = ca_crt_base(srv, cn, ca_leaf_not_after(ca), err, errlen);
	for (size_t i = 0; !ret && i < n_hosts; i++)
		ret = ca_add_san(srv->crt, hosts[i], err, errlen);
	if (!ret)
		ret = ca_crt_leaf_sign(srv, ca, GNUTLS_KP_TLS_WWW_SERVER, err, errlen);
	return ret;
}

/* PEM of a certificate and of its key (PKCS#8, unencrypted). */
static int ca_export(const struct ca_cert *c, gnutls_datum_t *crt, gnutls_datum_t *key, char *err,
		     size_t errlen)
{
	int rc;

	rc = gnutls_x509_crt_export2(c->crt, GNUTLS_X509_FMT_PEM, crt);
	if (rc < 0)
		return ca_fail(rc, "exporting the certificate", err, errlen);
	rc = gnutls_x509_privkey_export2_pkcs8(c->key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
					       key);
	if (rc < 0)
		return ca_fail(rc, "exporting the key", err, errlen);
	return 0;
}

static void ca_datum_free(gnutls_datum_t *d)
{
	if (d->data) {
		gnutls_memset(d->data, 0, d->size);
		gnutls_free(d->data);
	}
	d->data = NULL;
	d->size = 0;
}

/* Write a certificate (0644) and its key (0600); both or neither. */
static int ca_write_pair(const struct ca_cert *c, const char *crt_path, const char *key_path,
			 char *err, size_t errlen)
{
	gnutls_datum_t crt = {NULL, 0}, key = {NULL, 0};
	int ret;

	ret = ca_export(c, &crt, &key, err, errlen);
	if (ret)
		goto out;
	ret = ca_write_file(key_path, &key, 0600, err, errlen);
	if (ret)
		goto out;
	ret = ca_write_file(crt_path, &crt, 0644, err, errlen);
	if (ret)
		unlink(key_path);
out:
	ca_datum_free(&crt);
	ca_datum_free(&key);
	return ret;
}

static int ca_path(char *out, size_t outlen, const char *dir, const char *name, const char *ext,
		   char *err, size_t errlen)
{
	int n = snprintf(out, outlen, "%s/%s%s", dir, name, ext);

	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Refuse to overwrite: a second `ca init` would orphan every certificate issued. */
static int ca_must_not_exist(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		snprintf(err, errlen, "%s exists: refusing to overwrite it", path);
		return -EEXIST;
	}
	if (errno != ENOENT) {
		int ret = -errno;

		snprintf(err, errlen, "cannot check %s: %s", path, strerror(errno));
		return ret;
	}
	return 0;
}

int collector_ca_init(const char *dir, const char *const *hosts, size_t n_hosts, char *err,
		      size_t errlen)
{
	static const char *const names[4][2] = {
	    {"ca", ".crt"}, {"ca", ".key"}, {"server", ".crt"}, {"server", ".key"}};
	struct ca_cert ca = {0}, srv = {0};
	char paths[4][PATH_MAX];
	int ret;

	err[0] = '\0';
	if (n_hosts == 0) {
		snprintf(err, errlen, "no --host given");
		return -EINVAL;
	}
	for (int i = 0; i < 4; i++) {
		ret =
		    ca_path(paths[i], sizeof(paths[i]), dir, names[i][0], names[i][1], err, errlen);
		if (!ret)
			ret = ca_must_not_exist(paths[i], err, errlen);
		if (ret)
			return ret;
	}
	ret = util_mkdir_p(dir, 0755);
	if (ret) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-ret));
		return ret;
	}
	ret = ca_make_ca(&ca, err, errlen);
	if (!ret)
		ret = ca_make_server(&srv, &ca, hosts, n_hosts, err, errlen);
	if (ret)
		goto out;
	ret = ca_write_pair(&ca, paths[0], paths[1], err, errlen);
	if (ret)
		goto out;
	ret = ca_write_pair(&srv, paths[2], paths[3], err, errlen);
	if (ret) {
		unlink(paths[0]);
		unlink(paths[1]);
	}
out:
	ca_cert_clear(&srv);
	ca_cert_clear(&ca);
	return ret;
}

/* Read dir/ca.crt and dir/ca.key and check that they belong together and make a CA. */
static int ca_load(struct ca_cert *ca, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX], *pem = NULL;
	unsigned char id1[64], id2[64];
	size_t len = 0, l1 = sizeof(id1), l2 = sizeof(id2);
	unsigned int is_ca = 0, critical = 0;
	gnutls_datum_t d;
	int ret, rc;

	ret = ca_path(path, sizeof(path), dir, "ca", ".crt", err, errlen);
	if (ret)
		goto out;
	ret = util_read_file(path, CA_PEM_MAX, &pem, &len);
	if (ret) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-ret));
		goto out;
	}
	d.data = (unsigned char *)pem;
	d.size = (unsigned int)len;
	rc = gnutls_x509_crt_init(&ca->crt);
	if (rc >= 0)
		rc = gnutls_x509_crt_import(ca->crt, &d, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(err, errlen, "%s: not a PEM certificate: %s", path, gnutls_strerror(rc));
		ret = -EINVAL;
		goto out;
	}
	rc = gnutls_x509_crt_get_basic_constraints(ca->crt, &critical, &is_ca, NULL);
	if (rc < 0 || !is_ca) {
		snprintf(err, errlen, "%s: not a CA certificate", path);
		ret = -EINVAL;
		goto out;
	}
	free(pem);
	pem = NULL;

	ret = ca_path(path, sizeof(path), dir, "ca", ".key", err, errlen);
	if (ret)
		goto out;
	ret = util_read_file(path, CA_PEM_MAX, &pem, &len);
	if (ret) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(-ret));
		goto out;
	}
	d.data = (unsigned char *)pem;
	d.size = (unsigned int)len;
	rc = gnutls_x509_privkey_init(&ca->key);
	if (rc >= 0)
		rc = gnutls_x509_privkey_import2(ca->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0) {
		snprintf(err, errlen, "%s: not an unencrypted PEM private key: %s", path,
			 gnutls_strerror(rc));
		ret = -EINVAL;
		goto out;
	}
	rc = gnutls_x509_crt_get_key_id(ca->crt, GNUTLS_KEYID_USE_SHA1, id1, &l1);
	if (rc >= 0)
		rc = gnutls_x509_privkey_get_key_id(ca->key, GNUTLS_KEYID_USE_SHA1, id2, &l2);
	if (rc < 0 || l1 != l2 || memcmp(id1, id2, l1) != 0) {
		snprintf(err, errlen, "%s does not belong to %s/ca.crt", path, dir);
		ret = -EINVAL;
		goto out;
	}
	rc = gnutls_privkey_init(&ca->pkey);
	if (rc >= 0)
		rc = gnutls_privkey_import_x509(ca->pkey, ca->key, 0);
	if (rc < 0)
		ret = ca_fail(rc, "CA key", err, errlen);
out:
	if (pem) {
		gnutls_memset(pem, 0, len);
		free(pem);
	}
	return ret;
}

int collector_ca_issue_node(const char *dir, const char *name, char *err, size_t errlen)
{
	struct ca_cert ca = {0}, node = {0};
	char crt_path[PATH_MAX], key_path[PATH_MAX];
	int ret;

	err[0] = '\0';
	if (!collector_ca_name_valid(name)) {
		snprintf(err, errlen,
			 "node name '%s': use 1-%d characters of A-Z a-z 0-9 . _ - (not starting "
			 "with . or -)",
			 name, CA_NAME_MAX);
		return -EINVAL;
	}
	if (strcmp(name, "ca") == 0 || strcmp(name, "server") == 0) {
		snprintf(err, errlen, "node name '%s' is reserved for the CA's own files", name);
		return -EINVAL;
	}
	ret = ca_path(crt_path, sizeof(crt_path), dir, name, ".crt", err, errlen);
	if (!ret)
		ret = ca_path(key_path, sizeof(key_path), dir, name, ".key", err, errlen);
	if (!ret)
		ret = ca_must_not_exist(crt_path, err, errlen);
	if (!ret)
		ret = ca_must_not_exist(key_path, err, errlen);
	if (!ret)
		ret = ca_load(&ca, dir, err, errlen);
	if (!ret)
		ret = ca_new_key(&node, err, errlen);
	if (!ret)
		ret = ca_crt_base(&node, name, ca_leaf_not_after(&ca), err, errlen);
	if (!ret)
		ret = ca_crt_leaf_sign(&node, &ca, GNUTLS_KP_TLS_WWW_CLIENT, err, errlen);
	if (!ret)
		ret = ca_write_pair(&node, crt_path, key_path, err, errlen);
	ca_cert_clear(&node);
	ca_cert_clear(&ca);
	return ret;
}
