/*-------------------------------------------------------------------------
 *
 * privacy.h
 *	  Privacy settings, the lookup reach of a transaction, the EXPLAIN
 *	  guard (docs/privacy.md, docs/threat-model.md).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_PRIVACY_H
#define LOYALTY_PRIVACY_H

/* settings (privacy_lookup.c) */
extern int	loyalty_lookup_budget;
extern int	loyalty_verify_failures;
extern int	loyalty_bi_k_anonymity;

extern void loyalty_privacy_settings_init(void);
extern void loyalty_privacy_guard_init(void);

/* the key material: loyalty.key_file, verified (privacy_key.c) */
#define LOYALTY_KEY_MATERIAL	64
extern void loyalty_privacy_key_init(void);
extern uint32 loyalty_key_generation(void);
extern void loyalty_key_load(unsigned char *material);

#endif							/* LOYALTY_PRIVACY_H */
