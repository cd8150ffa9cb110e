"""The payments domain, pure: payment, refund, top-up, payout and transfer state machines; fees.

Functions return the new object and the event types it produced; they
perform no I/O and read no clock (``now_us`` is passed in). Every saga step
in progress is recorded on its object, and every ledger transfer id is
derived from the object id and the step, so a re-run step is recognised by
the ledger (``exists``) and money moves once.
"""

from __future__ import annotations

from paymesh.payments.domain.common import *  # noqa: F403
from paymesh.payments.domain.common import __all__ as _common
from paymesh.payments.domain.fees import *  # noqa: F403
from paymesh.payments.domain.fees import __all__ as _fees
from paymesh.payments.domain.payments import *  # noqa: F403
from paymesh.payments.domain.payments import __all__ as _payments
from paymesh.payments.domain.payouts import *  # noqa: F403
from paymesh.payments.domain.payouts import __all__ as _payouts
from paymesh.payments.domain.refunds import *  # noqa: F403
from paymesh.payments.domain.refunds import __all__ as _refunds
from paymesh.payments.domain.requests import *  # noqa: F403
from paymesh.payments.domain.requests import __all__ as _requests
from paymesh.payments.domain.reviews import *  # noqa: F403
from paymesh.payments.domain.reviews import __all__ as _reviews
from paymesh.payments.domain.topups import *  # noqa: F403
from paymesh.payments.domain.topups import __all__ as _topups
from paymesh.payments.domain.transfers import *  # noqa: F403
from paymesh.payments.domain.transfers import __all__ as _transfers

__all__ = [
    *_common,
    *_fees,
    *_payments,
    *_payouts,
    *_refunds,
    *_requests,
    *_reviews,
    *_topups,
    *_transfers,
]
