/*-------------------------------------------------------------------------
 *
 * tier_util.c
 *	  Small helpers of the tier and earning engine: calendar arithmetic
 *	  on dates.  (Their SPI plans are src/spi.h's.)
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
#include "spi.h"

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
