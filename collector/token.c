/*
 * Bearer tokens: "srt_" and 32 random bytes in hex. Only the SHA-256 of a token
 * is stored, so a stolen index does not hand out access.
 */
#include "collector.h"

#include <errno.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define TOKEN_RANDOM_BYTES 32
#define TOKEN_USER_MAX	   128

int collector_token_hash(const char *token, size_t len, uint8_t hash[32])
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, len, hash) < 0)
		return -EIO;
	return 0;
}

int collector_token_generate(char *out, size_t outlen, uint8_t hash[32])
{
	static const char hex[] = "0123456789abcdef";
	const size_t plen = sizeof(COLLECTOR_TOKEN_PREFIX) - 1;
	uint8_t rnd[TOKEN_RANDOM_BYTES];
	int err;

	if (outlen < COLLECTOR_TOKEN_LEN + 1)
		return -ENOSPC;
	if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof(rnd)) < 0)
		return -EIO;
	memcpy(out, COLLECTOR_TOKEN_PREFIX, plen);
	for (size_t i = 0; i < sizeof(rnd); i++) {
		out[plen + 2 * i] = hex[rnd[i] >> 4];
		out[plen + 2 * i + 1] = hex[rnd[i] & 0xf];
	}
	out[COLLECTOR_TOKEN_LEN] = '\0';
	err = collector_token_hash(out, COLLECTOR_TOKEN_LEN, hash);
	gnutls_memset(rnd, 0, sizeof(rnd));
	return err;
}

bool collector_token_role_valid(const char *role)
{
	return strcmp(role, "access") == 0 || strcmp(role, "auditor") == 0 ||
	       strcmp(role, "editor") == 0;
}

bool collector_token_user_valid(const char *user)
{
	size_t n = strlen(user);

	if (n == 0 || n > TOKEN_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)user[i];

		/* UTF-8 is fine; controls, spaces and quotes are not. */
		if (ch <= 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
			return false;
	}
	return true;
}
