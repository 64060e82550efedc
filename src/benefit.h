/*-------------------------------------------------------------------------
 *
 * benefit.h
 *	  The benefit catalogue, cached per backend, and benefit resolution:
 *	  what a member of a tier may use at a store at a time.
 *
 * The catalogue (loyalty.benefit, loyalty.benefit_grant, and what each
 * loyalty.risk_type freezes) is loaded once per backend into its own memory
 * context and dropped when one of the tables changes (statement trigger +
 * relcache invalidation, see cache_invalidate.c).
 * Resolution rules are in docs/benefits.md.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_BENEFIT_H
#define LOYALTY_BENEFIT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "policy.h"

typedef enum BenefitSource
{
	SOURCE_TIER = 1,			/* values are the precedence: higher wins */
	SOURCE_STORE = 2,
	SOURCE_CAMPAIGN = 3
} BenefitSource;

typedef enum BenefitLimitPer
{
	LIMIT_NONE = 0,
	LIMIT_STAY,
	LIMIT_DAY,
	LIMIT_MONTH,
	LIMIT_YEAR,
	LIMIT_EVER
} BenefitLimitPer;

extern const char *const loyalty_benefit_source_names[4];
extern const char *const loyalty_benefit_limit_names[6];

/* one row of loyalty.benefit_grant with its benefit */
typedef struct BenefitGrant
{
	pg_uuid_t	grant_id;
	char	   *benefit_code;
	char	   *name;
	int			kind;			/* LoyaltyCapability (a benefit kind) */
	BenefitSource source;
	char	   *min_tier;		/* NULL: every tier */
	char	   *store_code;		/* NULL: every store */
	char	   *campaign;		/* NULL unless SOURCE_CAMPAIGN */
	TimestampTz valid_from;
	TimestampTz valid_until;	/* exclusive */
	Jsonb	   *params;
	int			use_limit;		/* 0: unlimited */
	BenefitLimitPer limit_per;
	/* the text columns of its benefits() row, built once at load */
	text	   *code_text;
	text	   *name_text;
	text	   *kind_text;
	text	   *source_text;
	text	   *reason_text;
	text	   *limit_per_text;	/* NULL when unlimited */
} BenefitGrant;

/* one row of loyalty.risk_type */
typedef struct BenefitRiskType
{
	char	   *risk_code;
	uint32		freezes;		/* CAP_BIT mask (risk.h) */
} BenefitRiskType;

typedef struct BenefitCatalog
{
	int			ngrants;
	BenefitGrant *grants;		/* sorted by benefit_code */
	int			nrisk_types;
	BenefitRiskType *risk_types;
} BenefitCatalog;

/* a risk tag in effect for a member */
typedef struct BenefitTag
{
	pg_uuid_t	tag_id;
	char		risk_code[LOYALTY_CODE_LEN];
	TimestampTz raised_at;
	uint32		freezes;		/* CAP_BIT mask */
} BenefitTag;

/* what resolution needs to know about a member */
typedef struct BenefitMember
{
	char		tier[LOYALTY_CODE_LEN];
	bool		active;
	int			ntags;
	BenefitTag *tags;			/* in raising order */
} BenefitMember;

#endif							/* LOYALTY_BENEFIT_H */
