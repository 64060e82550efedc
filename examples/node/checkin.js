#!/usr/bin/env node
// A front desk check-in against the loyalty extension with the `pg` package,
// plus a store terminal listening for tier changes.
//
//   node checkin.js --card 123456789012 --store szx --check-in 2026-11-20 \
//       --check-out 2026-11-22 --revenue 1200 [--listen-as hq_crm] [--wait 10]
//
// Connection settings come from the usual PG* environment variables
// (PGHOST, PGPORT, PGDATABASE); PGUSER is the front desk login (szx_desk).
// With --listen-as, a second connection as that HQ login LISTENs on channel
// loyalty_event before the stay is recorded; when the stay upgrades the
// member it waits for the tier_changed notification, reads the event from
// the outbox (loyalty.event_read) and acknowledges it (loyalty.event_ack).
'use strict';

const { Client } = require('pg');

function args(argv) {
  const out = { wait: 10 };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[k] = argv[i + 1];
  }
  for (const k of ['card', 'store', 'checkIn', 'checkOut', 'revenue']) {
    if (!out[k]) {
      console.error('usage: checkin.js --card N --store S --check-in D --check-out D --revenue N [--listen-as ROLE] [--wait SECONDS]');
      process.exit(2);
    }
  }
  return out;
}

// Wait for one notification whose payload starts with `kind`, or time out.
function nextNotification(client, kind, seconds) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${kind} notification within ${seconds}s`)), seconds * 1000);
    client.on('notification', (msg) => {
      if (msg.channel === 'loyalty_event' && msg.payload.startsWith(kind + ' ')) {
        clearTimeout(timer);
        resolve(msg.payload);
      }
    });
  });
}

async function main() {
  const a = args(process.argv);
  const desk = new Client();
  await desk.connect();

  let listener = null;
  if (a.listenAs) {
    listener = new Client({ user: a.listenAs });
    await listener.connect();
    await listener.query('LISTEN loyalty_event');
  }

  try {
    // 1. the member, as the front desk may see them (audited lookup)
    const m = await desk.query(
      "SELECT member_id, full_name, phone, tier FROM loyalty.frontdesk_lookup($1, 'check_in')", [a.card]);
    if (m.rowCount !== 1) throw new Error(`no member with card ${a.card}`);
    const member = m.rows[0];
    console.log(`member   ${a.card}  name ${member.full_name}  phone ${member.phone}  tier ${member.tier}`);

    // 2. what the member may use here, now
    const b = await desk.query(
      'SELECT benefit_code, reason, params, frozen, frozen_by FROM loyalty.benefits($1, $2) ORDER BY benefit_code',
      [member.member_id, a.store]);
    for (const r of b.rows) {
      console.log(`benefit  ${r.benefit_code.padEnd(16)} ${r.reason.padEnd(24)} ${JSON.stringify(r.params)}` +
                  (r.frozen ? `  FROZEN by ${r.frozen_by}` : ''));
    }

    // 3. the stay, once: the key comes from the booking, so a retry is harmless
    const key = `node-${a.store}-${a.card}-${a.checkIn}`;
    const notified = listener && nextNotification(listener, 'tier_changed', Number(a.wait));
    if (notified) notified.catch(() => {}); // awaited below only if the tier changed
    const s = await desk.query(
      'SELECT nights_credited, base_points, bonus_points, tier, tier_changed, replayed ' +
      'FROM loyalty.stay_record($1, $2, $3, $4::date, $5::date, 1, $6::numeric)',
      [key, a.store, member.member_id, a.checkIn, a.checkOut, a.revenue]);
    const st = s.rows[0];
    console.log(`stay     ${st.nights_credited} nights, ${st.base_points} base + ${st.bonus_points} bonus points, ` +
                `tier ${st.tier}${st.tier_changed ? ' (upgraded)' : ''}${st.replayed ? ' (retry: recorded before)' : ''}`);

    // 4. the store terminal hears about the upgrade
    if (listener && st.tier_changed) {
      const payload = await notified;
      const eventId = payload.split(' ')[1];
      const ev = await listener.query(
        "SELECT event_id, payload FROM loyalty.event_read('node_example', 1000) WHERE kind = 'tier_changed' AND member_id = $1",
        [member.member_id]);
      for (const e of ev.rows) {
        const p = e.payload;
        const gained = (p.benefits && p.benefits.gained || []).map((g) => g.benefit_code).join(', ');
        console.log(`event    ${e.event_id}: ${p.old_tier} -> ${p.new_tier} (${p.reason})` +
                    (gained ? `, benefits gained: ${gained}` : ''));
      }
      await listener.query("SELECT loyalty.event_ack('node_example', $1)", [eventId]);
    }
  } finally {
    await desk.end();
    if (listener) await listener.end();
  }
}

main().catch((e) => {
  console.error(`check-in failed${e.code ? ' [' + e.code + ']' : ''}: ${e.message}`);
  process.exit(1);
});
