/*-------------------------------------------------------------------------
 *
 * privacy_mask.c
 *	  Character-aware masks for member fields.
 *
 * Every mask works on user-perceived characters (approximate extended
 * grapheme clusters), never on bytes and never on single code points, so
 * that a Chinese name, a full-width digit or an emoji sequence (flag, skin
 * tone, ZWJ family, keycap) is kept or hidden whole and never split into
 * an invalid or misleading fragment.  A value too short for its mask is
 * fully masked: the result is then the fixed string MASK_FULL, which does
 * not even reveal the value's length.
 *
 * The masks are the named treatments of the field policy (docs/privacy.md):
 *
 *	 phone		first 3 and last 4 characters kept		138****5678
 *	 name		first character kept					张*, J***
 *	 email		first character of the local part		j***@example.com
 *	 last4		last 4 characters kept					****1234
 *	 full		nothing kept							****
 *	 year, month_day, decade: generalisations of a birth date
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "privacy_mask.h"

PG_FUNCTION_INFO_V1(loyalty_mask_phone);
PG_FUNCTION_INFO_V1(loyalty_mask_name);
PG_FUNCTION_INFO_V1(loyalty_mask_email);
PG_FUNCTION_INFO_V1(loyalty_mask_last4);
PG_FUNCTION_INFO_V1(loyalty_mask_full);
PG_FUNCTION_INFO_V1(loyalty_mask_birth_year);
PG_FUNCTION_INFO_V1(loyalty_mask_birth_month_day);
PG_FUNCTION_INFO_V1(loyalty_mask_birth_decade);
PG_FUNCTION_INFO_V1(loyalty_mask_month_utc);

/*
 * decode_char
 *		The code point of the character at s (len bytes left) and its
 *		length in bytes.  Outside UTF-8 databases every character is its
 *		own cluster, so the code point is only needed for UTF-8.
 */
static pg_wchar
decode_char(const char *s, int len, int *charlen)
{
	int			l = pg_mblen(s);

	if (l > len)
		l = len;
	*charlen = l;
	if (GetDatabaseEncoding() == PG_UTF8)
		return utf8_to_unicode((const unsigned char *) s);
	return (pg_wchar) (unsigned char) s[0];
}

/*
 * is_extender
 *		Code points that attach to the preceding character: combining
 *		marks, variation selectors, emoji modifiers (skin tones), tags and
 *		the enclosing keycap.
 */
static bool
is_extender(pg_wchar c)
{
	return (c >= 0x0300 && c <= 0x036F) ||
		(c >= 0x1AB0 && c <= 0x1AFF) ||
		(c >= 0x1DC0 && c <= 0x1DFF) ||
		(c >= 0x20D0 && c <= 0x20FF) ||
		(c >= 0xFE00 && c <= 0xFE0F) ||
		(c >= 0xFE20 && c <= 0xFE2F) ||
		(c >= 0x1F3FB && c <= 0x1F3FF) ||
		(c >= 0xE0020 && c <= 0xE007F) ||
		(c >= 0xE0100 && c <= 0xE01EF);
}

#define ZWJ 0x200D
#define IS_REGIONAL_INDICATOR(c) ((c) >= 0x1F1E6 && (c) <= 0x1F1FF)

/*
 * loyalty_split_clusters
 *		Split s (len bytes) into user-perceived characters; returns their
 *		number and sets *starts to a palloc'd array of nclusters + 1 byte
 *		offsets (the last one is len).
 */
int
loyalty_split_clusters(const char *s, int len, int **starts)
{
	int		   *off = palloc(sizeof(int) * (len + 1));
	int			n = 0;
	int			pos = 0;

	while (pos < len)
	{
		int			l;
		pg_wchar	c = decode_char(s + pos, len - pos, &l);
		bool		regional = IS_REGIONAL_INDICATOR(c);
		bool		paired = false;

		off[n++] = pos;
		pos += l;
		while (pos < len)
		{
			int			l2;
			pg_wchar	c2 = decode_char(s + pos, len - pos, &l2);

			if (is_extender(c2))
				pos += l2;
			else if (c2 == ZWJ)
			{
				/* the joiner and the character it joins stay together */
				pos += l2;
				if (pos < len)
				{
					(void) decode_char(s + pos, len - pos, &l2);
					pos += l2;
				}
			}
			else if (regional && !paired && IS_REGIONAL_INDICATOR(c2))
			{
				/* a flag is a pair of regional indicators */
				pos += l2;
				paired = true;
			}
			else
				break;
		}
	}
	off[n] = len;
	*starts = off;
	return n;
}

/*
 * append_stars
 *		n asterisks.
 */
static void
append_stars(StringInfo buf, int n)
{
	while (n-- > 0)
		appendStringInfoChar(buf, '*');
}

/*
 * keep_ends
 *		Keep the first `head` and the last `tail` characters of s and put
 *		one asterisk in place of each other character; MASK_FULL when
 *		fewer than head + tail + min_hidden characters would remain
 *		hidden.
 */
static text *
keep_ends(const char *s, int len, int head, int tail, int min_hidden)
{
	int		   *off;
	int			n = loyalty_split_clusters(s, len, &off);
	StringInfoData buf;
	text	   *result;

	if (n < head + tail + min_hidden)
	{
		pfree(off);
		return cstring_to_text(MASK_FULL);
	}
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, s, off[head]);
	append_stars(&buf, n - head - tail);
	appendBinaryStringInfo(&buf, s + off[n - tail], len - off[n - tail]);
	result = cstring_to_text_with_len(buf.data, buf.len);
	pfree(buf.data);
	pfree(off);
	return result;
}

/*
 * loyalty_mask_text
 *		Apply a named mask to a string (for C callers and the SQL
 *		wrappers below).
 */
text *
loyalty_mask_text(LoyaltyMask mask, const char *s, int len)
{
	switch (mask)
	{
		case MASK_PHONE:
			/* 138****5678: at least one hidden character */
			return keep_ends(s, len, 3, 4, 1);
		case MASK_NAME:
			/* 张* : a one-character name is hidden whole */
			return keep_ends(s, len, 1, 0, 1);
		case MASK_LAST4:
			{
				int		   *off;
				int			n = loyalty_split_clusters(s, len, &off);
				text	   *result;

				/* a value of 4 characters or fewer would be shown whole */
				if (n <= 4)
					result = cstring_to_text(MASK_FULL);
				else
				{
					StringInfoData buf;

					initStringInfo(&buf);
					appendStringInfoString(&buf, MASK_FULL);
					appendBinaryStringInfo(&buf, s + off[n - 4], len - off[n - 4]);
					result = cstring_to_text_with_len(buf.data, buf.len);
					pfree(buf.data);
				}
				pfree(off);
				return result;
			}
		case MASK_EMAIL:
			{
				const char *at = NULL;
				const char *p;
				int		   *off;
				int			n;
				int			local_len;
				StringInfoData buf;
				text	   *result;

				for (p = s; p < s + len; p++)
					if (*p == '@')
						at = p;
				if (at == NULL || at + 1 >= s + len)
					return cstring_to_text(MASK_FULL);
				local_len = at - s;
				n = loyalty_split_clusters(s, local_len, &off);
				/* j***@example.com; a one-character local part is hidden */
				initStringInfo(&buf);
				if (n >= 2)
					appendBinaryStringInfo(&buf, s, off[1]);
				appendStringInfoString(&buf, "***");
				appendBinaryStringInfo(&buf, at, len - local_len);
				result = cstring_to_text_with_len(buf.data, buf.len);
				pfree(buf.data);
				pfree(off);
				return result;
			}
		case MASK_FULL_VALUE:
			return cstring_to_text(MASK_FULL);
	}
	elog(ERROR, "unknown mask %d", (int) mask);
	return NULL;				/* keep compiler quiet */
}

/*
 * mask_sql
 *		Common body of the text masks.
 */
static Datum
mask_sql(FunctionCallInfo fcinfo, LoyaltyMask mask)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(loyalty_mask_text(mask, VARDATA_ANY(t),
									   VARSIZE_ANY_EXHDR(t)));
}

/*
 * loyalty.mask_phone(text), mask_name, mask_email, mask_last4, mask_full
 *		The SQL face of the masks: immutable, strict.
 */
Datum
loyalty_mask_phone(PG_FUNCTION_ARGS)
{
	return mask_sql(fcinfo, MASK_PHONE);
}

Datum
loyalty_mask_name(PG_FUNCTION_ARGS)
{
	return mask_sql(fcinfo, MASK_NAME);
}

Datum
loyalty_mask_email(PG_FUNCTION_ARGS)
{
	return mask_sql(fcinfo, MASK_EMAIL);
}

Datum
loyalty_mask_last4(PG_FUNCTION_ARGS)
{
	return mask_sql(fcinfo, MASK_LAST4);
}

Datum
loyalty_mask_full(PG_FUNCTION_ARGS)
{
	return mask_sql(fcinfo, MASK_FULL_VALUE);
}

/*
 * birth_ymd
 *		Year, month and day of a date argument; error for infinite dates.
 */
static void
birth_ymd(FunctionCallInfo fcinfo, int *y, int *m, int *d)
{
	DateADT		date = PG_GETARG_DATEADT(0);

	if (DATE_NOT_FINITE(date))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("birth date must be finite")));
	j2date(date + POSTGRES_EPOCH_JDATE, y, m, d);
}

/*
 * loyalty.mask_birth_year(date) returns text: '1988'
 */
Datum
loyalty_mask_birth_year(PG_FUNCTION_ARGS)
{
	int			y,
				m,
				d;

	birth_ymd(fcinfo, &y, &m, &d);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%04d", y)));
}

/*
 * loyalty.mask_birth_month_day(date) returns text: '03-14', for birthday
 * service without the year.
 */
Datum
loyalty_mask_birth_month_day(PG_FUNCTION_ARGS)
{
	int			y,
				m,
				d;

	birth_ymd(fcinfo, &y, &m, &d);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%02d-%02d", m, d)));
}

/*
 * loyalty.mask_birth_decade(date) returns text: '1980s', for BI.
 */
Datum
loyalty_mask_birth_decade(PG_FUNCTION_ARGS)
{
	int			y,
				m,
				d;

	birth_ymd(fcinfo, &y, &m, &d);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%04ds", y - y % 10)));
}

/*
 * loyalty.mask_month_utc(timestamptz) returns text
 *		A time generalised to its calendar month in UTC, 'YYYY-MM': the
 *		same text as to_char(t AT TIME ZONE 'UTC', 'YYYY-MM') (a year BC
 *		without sign, as to_char prints it; NULL for an infinite time),
 *		without to_char's format parsing on every row of a BI scan.
 */
Datum
loyalty_mask_month_utc(PG_FUNCTION_ARGS)
{
	TimestampTz t = PG_GETARG_TIMESTAMPTZ(0);
	struct pg_tm tm;
	fsec_t		fsec;
	int			year;
	char		buf[32];
	int			len;

	if (TIMESTAMP_NOT_FINITE(t))
		PG_RETURN_NULL();
	/* no time zone: the internal value is UTC, as AT TIME ZONE 'UTC' gives */
	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	year = tm.tm_year <= 0 ? -(tm.tm_year - 1) : tm.tm_year;
	len = snprintf(buf, sizeof(buf), "%04d-%02d", year, tm.tm_mon);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf, len));
}
