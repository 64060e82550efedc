/*
 * checkin: a PMS front desk's check-in, as a libpq program.
 *
 *   checkin CONNINFO CARD_NO STORE CHECK_IN CHECK_OUT ROOM_REVENUE
 *
 * 1. look the member up by card number (the front desk's masked view; the
 *    lookup is audited),
 * 2. resolve the benefits the member may use at this store now,
 * 3. record the stay (idempotent: the key is derived from the booking, so a
 *    retry after a lost connection records it once).
 *
 * Connect as a front desk login (e.g. user=szx_desk): the database derives
 * the store and department from the login's role membership and refuses
 * another store's check-in.  Every statement is parameterised.
 *
 * Build: cc -o checkin checkin.c -I$(pg_config --includedir) -lpq
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* print the server's error with its SQLSTATE and exit */
static void
fail(PGconn *conn, PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	fprintf(stderr, "%s failed [%s]: %s", what, state ? state : "-",
			res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	if (res)
		PQclear(res);
	PQfinish(conn);
	exit(1);
}

/* run a parameterised query that must succeed */
static PGresult *
query(PGconn *conn, const char *what, const char *sql, int n,
	  const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail(conn, res, what);
	return res;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	char		member_id[64];
	char		key[256];
	int			i;

	if (argc != 7)
	{
		fprintf(stderr, "usage: %s CONNINFO CARD_NO STORE CHECK_IN CHECK_OUT ROOM_REVENUE\n", argv[0]);
		return 2;
	}
	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
		fail(conn, NULL, "connect");

	/* 1. the member, as the front desk may see them */
	{
		const char *p[1] = {argv[2]};

		res = query(conn, "member lookup",
					"SELECT member_id, full_name, phone, tier FROM loyalty.frontdesk_lookup($1, 'check_in')",
					1, p);
	}
	if (PQntuples(res) != 1)
	{
		fprintf(stderr, "no member with card %s\n", argv[2]);
		PQclear(res);
		PQfinish(conn);
		return 1;
	}
	snprintf(member_id, sizeof(member_id), "%s", PQgetvalue(res, 0, 0));
	printf("member   %s  name %s  phone %s  tier %s\n", argv[2],
		   PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
	PQclear(res);

	/* 2. what the member may use here, now */
	{
		const char *p[2] = {member_id, argv[3]};

		res = query(conn, "benefits",
					"SELECT benefit_code, reason, params::text, frozen, coalesce(frozen_by, '') "
					"FROM loyalty.benefits($1::uuid, $2) ORDER BY benefit_code", 2, p);
	}
	for (i = 0; i < PQntuples(res); i++)
		printf("benefit  %-16s %-24s %s%s%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			   PQgetvalue(res, i, 2),
			   strcmp(PQgetvalue(res, i, 3), "t") == 0 ? "  FROZEN by " : "",
			   PQgetvalue(res, i, 4));
	PQclear(res);

	/* 3. the stay, once */
	snprintf(key, sizeof(key), "pms-%s-%s-%s", argv[3], argv[2], argv[4]);
	{
		const char *p[6] = {key, argv[3], member_id, argv[4], argv[5], argv[6]};

		res = query(conn, "record stay",
					"SELECT nights_credited, base_points, bonus_points, tier, tier_changed, replayed "
					"FROM loyalty.stay_record($1, $2, $3::uuid, $4::date, $5::date, 1, $6::numeric)",
					6, p);
	}
	printf("stay     %s nights, %s base + %s bonus points, tier %s%s%s\n",
		   PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
		   PQgetvalue(res, 0, 3),
		   strcmp(PQgetvalue(res, 0, 4), "t") == 0 ? " (upgraded)" : "",
		   strcmp(PQgetvalue(res, 0, 5), "t") == 0 ? " (retry: recorded before)" : "");
	PQclear(res);
	PQfinish(conn);
	return 0;
}
