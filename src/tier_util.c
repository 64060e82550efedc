/*-------------------------------------------------------------------------
 *
 * tier_util.c
 *	  Small helpers of the tier and earning engine: saved SPI plans and
 *	  calendar arithmetic on dates.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "tier.h"

/*
 * loyalty_plan
 *		The saved plan in *slot, prepared on first use.  Saved plans are
 *		revalidated by the plan cache when the tables they use change.
 */
SPIPlanPtr
loyalty_plan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*slot = plan;
	}
	return *slot;
}

static bool spi_read_only = false;

/*
 * loyalty_spi_read_only
 *		Entry points of STABLE SQL functions call this with true, those of
 *		VOLATILE ones with false, before their first query: a volatile
 *		call's queries must see its own earlier writes.
 */
void
loyalty_spi_read_only(bool read_only)
{
	spi_read_only = read_only;
}

/*
 * loyalty_run
 *		Execute a saved plan and check that it returned "expected"
 *		(SPI_OK_SELECT, SPI_OK_INSERT, ...); returns SPI_processed.  Reads
 *		are read-only only inside STABLE entry points (see above).
 */
int
loyalty_run(SPIPlanPtr plan, const Datum *values, const char *nulls,
			bool read_only, long count, int expected)
{
	int			ret = SPI_execute_plan(plan, (Datum *) values, nulls,
									   read_only && spi_read_only, count);

	if (ret != expected)
		elog(ERROR, "SPI_execute_plan returned %s, expected %s",
			 SPI_result_code_string(ret), SPI_result_code_string(expected));
	return (int) SPI_processed;
}

/*
 * loyalty_month_start
 *		The first day of d's month.
 */
DateADT
loyalty_month_start(DateADT d)
{
	int			y,
				m,
				day;

	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
	return date2j(y, m, 1) - POSTGRES_EPOCH_JDATE;
}

/*
 * loyalty_add_months
 *		The first day of the month "months" after d's month.
 */
DateADT
loyalty_add_months(DateADT d, int months)
{
	int			y,
				m,
				day,
				idx;

	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
	idx = y * 12 + (m - 1) + months;
	return date2j(idx / 12, idx % 12 + 1, 1) - POSTGRES_EPOCH_JDATE;
}

/*
 * loyalty_date_year
 *		The calendar year of d.
 */
int
loyalty_date_year(DateADT d)
{
	int			y,
				m,
				day;

	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
	return y;
}

/*
 * loyalty_date_month
 *		The month (1-12) of d.
 */
int
loyalty_date_month(DateADT d)
{
	int			y,
				m,
				day;

	j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
	return m;
}

/*
 * loyalty_local_midnight
 *		The instant local midnight starts year-month-day in time zone tz.
 */
TimestampTz
loyalty_local_midnight(int year, int month, int day, const char *tz)
{
	return DatumGetTimestampTz(DirectFunctionCall7(make_timestamptz_at_timezone,
												   Int32GetDatum(year),
												   Int32GetDatum(month),
												   Int32GetDatum(day),
												   Int32GetDatum(0),
												   Int32GetDatum(0),
												   Float8GetDatum(0.0),
												   CStringGetTextDatum(tz)));
}
