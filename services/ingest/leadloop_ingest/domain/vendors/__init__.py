"""Vendor CRM webhooks mapped onto leadloop's CRM contract (``crm.activities``,
``crm.stage-changes``), configured by ``config/crm-inbound.yaml``: one module per vendor.

- :mod:`.hubspot`: HubSpot webhook subscriptions; the record an event names is read by
  the web adapter and handed in, so the mapping stays pure.
- :mod:`.jiandaoyun`: 简道云 data push of one form record.
- :mod:`.salesforce`: Salesforce Outbound Messages (SOAP ``notifications``).

What they share: :mod:`.targets` (the configuration file's model, one :class:`Target`
per endpoint) and :mod:`.mapping` (the outcomes and the contract events built from
mapped values).

Every item ends as exactly one ``Emit`` (a contract event), ``Reject`` (a visible
reason; the item goes to ``crm.rejected``) or ``Ignore`` (an event the target does not
subscribe leadloop to, e.g. a ``data_remove``). A vendor value that has no entry in the
target's maps is ``unmapped_value`` naming the field, never a guess, and never the value
(a widget may hold personal data). Everything here is pure and total: no I/O, time
comes in as ``now``, arbitrary input never raises (property-tested).
"""
