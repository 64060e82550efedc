/*-------------------------------------------------------------------------
 *
 * privacy_key.c
 *	  Where the key material of privacy_crypto.c comes from, and the proof
 *	  that it is this database's key (issue 12.8, issue 14.6).
 *
 * The key file is named by the setting loyalty.key_file and lives outside
 * the data directory, so that a base backup (pg_basebackup, a REPLICATION
 * login) copies the ciphertexts without the key.  A key file inside the
 * data directory, or a relative name (which the server resolves in the data
 * directory), is refused unless loyalty.key_file_in_datadir is on.
 *
 * A key is made only by loyalty.key_create(), run once per database by a
 * superuser: it writes a new key file (or takes the one the setting names,
 * for a second database of the same server or a key moved out of a 1.1
 * data directory) and records the key's fingerprint in
 * loyalty.key_fingerprint.  The fingerprint is HMAC-SHA256, keyed with the
 * whole key material, of a fixed label: it identifies the key without
 * telling anything about it.  Every backend compares the key file's
 * fingerprint with the recorded one before its first use of the key (and
 * again when a setting changes); a missing, damaged or different key file,
 * or a database without a recorded key, is an error with a hint.  Nothing
 * ever makes a key by itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "privacy.h"
#include "spi.h"

PG_FUNCTION_INFO_V1(loyalty_key_create);

/* the label whose HMAC under the key is the key's fingerprint */
#define FINGERPRINT_LABEL	"loyalty key fingerprint v1"
#define FINGERPRINT_LEN		32

/* settings */
static char *key_file = NULL;
static bool key_file_in_datadir = false;

/*
 * Incremented when a setting changes (assign hooks), so that the next use
 * of the key reads and verifies the file again.
 */
static uint32 key_settings_generation = 1;

/*
 * key_setting_assign_string, key_setting_assign_bool
 *		Assign hooks: the key must be read again.
 */
static void
key_setting_assign_string(const char *newval, void *extra)
{
	key_settings_generation++;
}

static void
key_setting_assign_bool(bool newval, void *extra)
{
	key_settings_generation++;
}

/*
 * loyalty_privacy_key_init
 *		Define the settings (from _PG_init).
 */
void
loyalty_privacy_key_init(void)
{
	DefineCustomStringVariable("loyalty.key_file",
							   "The file of loyalty's key material (ID numbers, bank cards, pseudonyms).",
							   "An absolute path outside the data directory, readable only by the server's OS user.",
							   &key_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, key_setting_assign_string, NULL);
	DefineCustomBoolVariable("loyalty.key_file_in_datadir",
							 "Allow loyalty.key_file inside the data directory.",
							 "Off: a base backup of the data directory would carry the key with the ciphertexts.",
							 &key_file_in_datadir, false,
							 PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							 NULL, key_setting_assign_bool, NULL);
}

/*
 * loyalty_key_generation
 *		A number that changes whenever a key setting changes.
 */
uint32
loyalty_key_generation(void)
{
	return key_settings_generation;
}

/*
 * key_path
 *		The configured key file, checked to lie outside the data directory
 *		(unless allowed).  The file itself need not exist.
 */
static const char *
key_path(void)
{
	char		dir[MAXPGPATH];
	char		real_dir[PATH_MAX];
	char		real_data[PATH_MAX];
	char	   *slash;
	size_t		n;

	if (key_file == NULL || key_file[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("loyalty.key_file is not set"),
				 errdetail("ID numbers, bank cards and pseudonyms need the key file."),
				 errhint("Set loyalty.key_file in postgresql.conf to a file outside the data directory and reload; "
						 "a new database then runs SELECT loyalty.key_create() once (docs/privacy.md).")));
	if (!is_absolute_path(key_file))
	{
		if (!key_file_in_datadir)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("loyalty.key_file must be an absolute path outside the data directory"),
					 errdetail("A relative name is a file in the data directory, which every base backup copies with the ciphertexts."),
					 errhint("Move the key file out of the data directory and name it with an absolute path, "
							 "or set loyalty.key_file_in_datadir = on (tests and demos only).")));
		return key_file;
	}
	if (key_file_in_datadir)
		return key_file;

	/* the directory of the file, resolved, against the data directory */
	strlcpy(dir, key_file, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	if (realpath(dir, real_dir) == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve the directory of the loyalty key file \"%s\": %m", key_file),
				 errhint("Check loyalty.key_file.")));
	if (realpath(DataDir, real_data) == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve the data directory: %m")));
	n = strlen(real_data);
	if (strncmp(real_dir, real_data, n) == 0 &&
		(real_dir[n] == '\0' || real_dir[n] == '/'))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the loyalty key file \"%s\" is inside the data directory", key_file),
				 errdetail("Every base backup (pg_basebackup, a replication login) would copy it with the ciphertexts."),
				 errhint("Move the key file out of the data directory and set loyalty.key_file to its new place, "
						 "or set loyalty.key_file_in_datadir = on (tests and demos only).")));
	return key_file;
}

/*
 * fingerprint_hex
 *		The key's fingerprint as 64 hex digits (palloc'd).
 */
static char *
fingerprint_hex(const unsigned char *material)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char	   *hex = palloc(2 * FINGERPRINT_LEN + 1);
	int			i;

	static const char digits[] = "0123456789abcdef";

	if (HMAC(EVP_sha256(), material, LOYALTY_KEY_MATERIAL,
			 (const unsigned char *) FINGERPRINT_LABEL, strlen(FINGERPRINT_LABEL),
			 mac, &len) == NULL || len != FINGERPRINT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the key's fingerprint")));
	for (i = 0; i < FINGERPRINT_LEN; i++)
	{
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 0x0f];
	}
	hex[2 * FINGERPRINT_LEN] = '\0';
	explicit_bzero(mac, sizeof(mac));
	return hex;
}

/*
 * read_key_file
 *		Read the key material of path into material; false if the file
 *		does not exist and missing_ok.
 */
static bool
read_key_file(const char *path, unsigned char *material, bool missing_ok)
{
	struct stat st;
	int			fd;
	ssize_t		n;
	unsigned char extra;

	fd = open(path, O_RDONLY | PG_BINARY, 0);
	if (fd < 0 && errno == ENOENT && missing_ok)
		return false;
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open the loyalty key file \"%s\": %m", path),
				 errdetail("loyalty never makes a new key by itself: data sealed with the old key would no longer open."),
				 errhint("Restore the key file of this database from the backup of the server's secrets, "
						 "or point loyalty.key_file at it and reload.")));
	if (fstat(fd, &st) != 0)
	{
		close(fd);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat the loyalty key file \"%s\": %m", path)));
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the loyalty key file \"%s\" is readable by others", path),
				 errdetail("Its permissions must be 0600 or stricter."),
				 errhint("chmod 600 the file.")));
	}
	n = read(fd, material, LOYALTY_KEY_MATERIAL);
	if (n == LOYALTY_KEY_MATERIAL && read(fd, &extra, 1) != 0)
		n = -1;
	close(fd);
	if (n != LOYALTY_KEY_MATERIAL)
	{
		explicit_bzero(material, LOYALTY_KEY_MATERIAL);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the loyalty key file \"%s\" is damaged", path),
				 errdetail("It must hold exactly %d bytes.", LOYALTY_KEY_MATERIAL),
				 errhint("Restore it from the backup of the server's secrets.")));
	}
	return true;
}

/*
 * recorded_fingerprint
 *		The fingerprint recorded in this database, or NULL.  Read as the
 *		bootstrap superuser: the table is granted to nobody, and the key is
 *		used by logins of every role.
 */
static char *
recorded_fingerprint(void)
{
	Oid			save_userid;
	int			save_sec_context;
	char	   *result = NULL;
	MemoryContext caller = CurrentMemoryContext;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	lspi_connect(LSPI_READ_ONLY);
	if (lspi_exec("SELECT pg_catalog.encode(fingerprint, 'hex') FROM loyalty.key_fingerprint",
				  0, NULL, NULL, NULL, true, 2, SPI_OK_SELECT) == 1)
	{
		char	   *v = lspi_text(0, 1);

		if (v != NULL)
			result = MemoryContextStrdup(caller, v);
	}
	lspi_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	return result;
}

/*
 * loyalty_key_load
 *		The key material of this database into material
 *		(LOYALTY_KEY_MATERIAL bytes), verified against the recorded
 *		fingerprint; an error otherwise.
 */
void
loyalty_key_load(unsigned char *material)
{
	const char *path = key_path();
	char	   *have;
	char	   *want;

	want = recorded_fingerprint();
	if (want == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no loyalty key is recorded in this database"),
				 errdetail("ID numbers, bank cards and pseudonyms need the key whose fingerprint the database records."),
				 errhint("A superuser runs SELECT loyalty.key_create() once: it makes the key file that loyalty.key_file names, "
						 "or takes the one that is there (docs/privacy.md).")));
	read_key_file(path, material, false);
	have = fingerprint_hex(material);
	if (strcmp(have, want) != 0)
	{
		explicit_bzero(material, LOYALTY_KEY_MATERIAL);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the loyalty key file \"%s\" is not the key of this database", path),
				 errdetail("Its fingerprint differs from the one recorded when the database's key was made."),
				 errhint("Restore the key file of this database from the backup of the server's secrets; "
						 "loyalty never replaces a key by itself.")));
	}
}

/*
 * loyalty.key_create() returns text
 *		Make the key of this database: write a new key file where
 *		loyalty.key_file says ('created'), or take the key file that is
 *		already there ('adopted'), and record its fingerprint.  Refused if
 *		a key is recorded already.  Superuser only.
 */
Datum
loyalty_key_create(PG_FUNCTION_ARGS)
{
	const char *path;
	unsigned char material[LOYALTY_KEY_MATERIAL];
	bool		created = false;
	char	   *fp;
	Datum		arg;
	Oid			argtype = BYTEAOID;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may create the loyalty key")));
	path = key_path();
	if (recorded_fingerprint() != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a loyalty key is recorded in this database already"),
				 errdetail("Replacing it would leave the data sealed with it unreadable; key rotation is not supported."),
				 errhint("If the key file is missing, restore it from the backup of the server's secrets.")));

	if (!read_key_file(path, material, true))
	{
		/*
		 * A new key.  It is written to a file of this process and then
		 * linked to the key file's name, which fails if that exists:
		 * concurrent creators never overwrite each other's key, and nobody
		 * reads a key file that is not yet complete.
		 */
		char		tmp[MAXPGPATH];
		int			fd;

		if (!pg_strong_random(material, sizeof(material)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate the loyalty key material")));
		snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int) MyProcPid);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY, S_IRUSR | S_IWUSR);
		if (fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create the loyalty key file \"%s\": %m", tmp)));
		if (write(fd, material, sizeof(material)) != sizeof(material) || pg_fsync(fd) != 0)
		{
			close(fd);
			unlink(tmp);
			explicit_bzero(material, sizeof(material));
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write the loyalty key file \"%s\": %m", tmp)));
		}
		close(fd);
		if (link(tmp, path) != 0)
		{
			int			save_errno = errno;

			unlink(tmp);
			explicit_bzero(material, sizeof(material));
			errno = save_errno;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create the loyalty key file \"%s\": %m", path),
					 errhint("If another session made it just now, run loyalty.key_create() again to take it.")));
		}
		unlink(tmp);
		created = true;
	}
	fp = fingerprint_hex(material);
	explicit_bzero(material, sizeof(material));

	arg = DirectFunctionCall2(binary_decode, CStringGetTextDatum(fp),
							  CStringGetTextDatum("hex"));
	lspi_connect(LSPI_READ_WRITE);
	lspi_exec("INSERT INTO loyalty.key_fingerprint (fingerprint) VALUES ($1)",
			  1, &argtype, &arg, NULL, false, 0, SPI_OK_INSERT);
	lspi_finish();
	ereport(LOG,
			(errmsg("loyalty key of database \"%s\" %s: file \"%s\"",
					get_database_name(MyDatabaseId),
					created ? "created" : "adopted", path)));
	/* the next use reads and verifies the file */
	key_settings_generation++;
	PG_RETURN_TEXT_P(cstring_to_text(created ? "created" : "adopted"));
}
