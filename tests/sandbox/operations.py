"""GraphQL documents the sandbox tests send: richer selections than the service's own
(consumer/afosto/operations), which tests/sandbox/test_schema.py runs as they are."""

from __future__ import annotations

INVOICE_FIELDS = """
  id number currency created_at
  customer { reference contact { id email given_name family_name } organisation { id name } }
  orders { id number }
  lines {
    ids order_id sku label quantity unit_price total total_ex_vat
    vat { rate amount } is_contra
  }
  subtotal total total_ex_vat
  vat { rate amount }
  reimbursement { status amount_paid amount_due }
  pdf_url
"""

ORDER_QUERY = """
query Order($id: String!) {
  order(id: $id) {
    id number status currency created_at updated_at
    customer { reference contact { id email } organisation { id name } }
    items { ids sku label quantity price total vat { rate amount } }
    subtotal total total_excluding_vat vat { rate amount }
    actions { action ids }
    invoices { id number total pdf_url lines { ids is_contra } }
  }
}
"""

INVOICE_QUERY = f"""
query Invoice($id: String!) {{
  invoice(id: $id) {{ {INVOICE_FIELDS} }}
}}
"""

INVOICE_ITEMS_MUTATION = f"""
mutation InvoiceItems($input: InvoiceItemsInput!) {{
  invoiceItems(input: $input) {{ invoice {{ {INVOICE_FIELDS} }} }}
}}
"""

ORDERS_QUERY = """
query Orders($first: Int, $after: String, $created_at: InequalityFilter, $action: OrderActionType) {
  orders(first: $first, after: $after, created_at: $created_at, action: $action) {
    edges { cursor node { id number } }
    nodes { id created_at actions { action ids } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

ALL = {
    "order": ORDER_QUERY,
    "invoice": INVOICE_QUERY,
    "invoiceItems": INVOICE_ITEMS_MUTATION,
    "orders": ORDERS_QUERY,
}
