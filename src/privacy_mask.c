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
 * reveal_budget
 *		How many characters of a value of n characters a mask may show: at
 *		most a third, whatever the length (issue 12.9).
 */
static int
reveal_budget(int n)
{
	return n / 3;
}

/*
 * keep_tail
 *		MASK_FULL followed by the last `tail` characters; MASK_FULL alone
 *		when tail is 0.  The number of asterisks does not tell the length.
 */
static text *
keep_tail(const char *s, int len, const int *off, int n, int tail)
{
	StringInfoData buf;
	text	   *result;

	if (tail <= 0)
		return cstring_to_text(MASK_FULL);
	initStringInfo(&buf);
	appendStringInfoString(&buf, MASK_FULL);
	appendBinaryStringInfo(&buf, s + off[n - tail], len - off[n - tail]);
	result = cstring_to_text_with_len(buf.data, buf.len);
	pfree(buf.data);
	return result;
}

/*
 * loyalty_mask_text
 *		Apply a named mask to a string (for C callers and the SQL
 *		wrappers below).  Every mask shows at most a third of the value's
 *		user-perceived characters (reveal_budget()); what does not fit is
 *		hidden, down to MASK_FULL.
 */
text *
loyalty_mask_text(LoyaltyMask mask, const char *s, int len)
{
	int		   *off;
	int			n;
	int			k;
	text	   *result;

	if (mask == MASK_FULL_VALUE)
		return cstring_to_text(MASK_FULL);
	n = loyalty_split_clusters(s, len, &off);
	k = reveal_budget(n);
	switch (mask)
	{
		case MASK_PHONE:
		case MASK_LAST4:
			/* 13812345678 -> ****678, 6222021234567890 -> ****7890 */
			result = keep_tail(s, len, off, n, Min(4, k));
			break;
		case MASK_NAME:
			/* 张三丰 -> 张**, 欧阳娜娜 -> 欧***; 张三 -> **** */
			if (k == 0)
				result = cstring_to_text(MASK_FULL);
			else
				result = keep_ends(s, len, k, 0, 1);
			break;
		case MASK_EMAIL:
			{
				int			at = -1;
				int			dot = -1;
				int			i;
				int			shown;
				StringInfoData buf;

				for (i = 0; i < n; i++)
				{
					if (off[i + 1] - off[i] == 1 && s[off[i]] == '@')
						at = i;
					else if (at >= 0 && off[i + 1] - off[i] == 1 && s[off[i]] == '.')
						dot = i;
				}
				/* the first character and the "@" count against the budget */
				if (at < 2 || at == n - 1 || k < 2)
				{
					result = cstring_to_text(MASK_FULL);
					break;
				}
				initStringInfo(&buf);
				appendBinaryStringInfo(&buf, s, off[1]);
				appendStringInfoString(&buf, "***@***");
				shown = 2;
				/* the top-level domain, if it fits: z***@***.com */
				if (dot > at + 1 && shown + (n - dot) <= k)
					appendBinaryStringInfo(&buf, s + off[dot], len - off[dot]);
				result = cstring_to_text_with_len(buf.data, buf.len);
				pfree(buf.data);
				break;
			}
		default:
			elog(ERROR, "unknown mask %d", (int) mask);
			result = NULL;		/* keep compiler quiet */
	}
	pfree(off);
	return result;
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
