"""Configuration of the Amazon Business emulator and its regional profiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .faults import FAULT_PROFILES
from .jp import AMAZON_JAPAN, JP_SELLERS, Party

_UNSET = datetime.min.replace(tzinfo=UTC)
DEFAULT_WINDOW = timedelta(days=7)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _as_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC; convert an aware one to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class EmulatorConfig:
    """What the emulator generates and how fast its clock runs.

    ``speed`` scales the emulator's time: rate-limit refills are multiplied by it,
    report latency and presigned-URL lifetime are divided by it. Access tokens keep
    their real 3600 s lifetime, as clients cache them by ``expires_in``.
    The window defaults to the 7 days before now (UTC).
    ``retry_after`` adds a Retry-After header to 429s (Amazon documents none).
    ``faults`` names one of ``FAULT_PROFILES`` ("none" by default).
    ``jp_inconsistent_invoices`` (JP only) deliberately breaks that many invoices' details.
    ``max_items_per_order``: an order has 1 to this many line items (4 by default, about 1.8 a shipment; the
    backfill benchmark takes 5 to reach 20,000 line items with 10,000 invoices).
    ``report_options_listed``: getReports' entries echo reportOptions (invoiceId), as getReport's do in
    Amazon's tutorial; False answers the model's Report without them (a lost report is then found by time).
    ``unshipped_share`` of the shipments (at least one when above 0) have not shipped yet: see ``dataset``.
    """

    seed: int = 7
    orders: int = 30
    region: str = "NA"
    speed: float = 1.0
    report_latency_seconds: tuple[float, float] = (20.0, 90.0)
    window_start: datetime = _UNSET
    window_end: datetime = field(default_factory=_now)
    retry_after: bool = False
    faults: str = "none"
    jp_inconsistent_invoices: int = 0
    max_items_per_order: int = 4
    report_options_listed: bool = True
    unshipped_share: float = 0.0  # shipments not shipped yet: line items listed without shipmentId, no invoice

    def __post_init__(self) -> None:
        end = _as_utc(self.window_end)
        start = end - DEFAULT_WINDOW if self.window_start == _UNSET else _as_utc(self.window_start)
        object.__setattr__(self, "window_end", end)
        object.__setattr__(self, "window_start", start)
        if start >= end:
            raise ValueError("window_start must be before window_end")
        self._check_options()

    def _check_options(self) -> None:
        """Refuse an option outside its range, or one the region does not take."""
        if self.orders < 1:
            raise ValueError("orders must be at least 1")
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        low, high = self.report_latency_seconds
        if low < 0 or high < low:
            raise ValueError("report_latency_seconds must be (low, high) with 0 <= low <= high")
        if self.region not in REGIONS:
            raise ValueError(f"unsupported region {self.region!r}; supported: {sorted(REGIONS)}")
        if self.faults not in FAULT_PROFILES:
            raise ValueError(f"unknown fault profile {self.faults!r}; known: {sorted(FAULT_PROFILES)}")
        if not 1 <= self.max_items_per_order <= 25:
            raise ValueError("max_items_per_order must be 1 to 25")
        if not 0 <= self.unshipped_share <= 1:
            raise ValueError("unshipped_share must be between 0 and 1")
        if self.jp_inconsistent_invoices < 0:
            raise ValueError("jp_inconsistent_invoices must not be negative")
        if self.jp_inconsistent_invoices and self.region != "JP":
            raise ValueError("jp_inconsistent_invoices needs region='JP'")

    @property
    def profile(self) -> RegionProfile:
        """The regional profile the data is generated for."""
        return REGIONS[self.region]


@dataclass(frozen=True)
class BillTo:
    """The buying business and its billing address."""

    company: str
    full_name: str
    address_line1: str
    city: str
    state: str
    postal_code: str
    country_code: str
    phone: str = ""

    def lines(self) -> list[str]:
        """The address as printed on a document."""
        return [
            self.company,
            f"Attn: {self.full_name}",
            self.address_line1,
            f"{self.city}, {self.state} {self.postal_code}",
            self.country_code,
        ]


@dataclass(frozen=True)
class RegionProfile:
    """Everything region-specific in generated data.

    ``issuer`` and ``sellers`` (JP only) carry the names and registration numbers of
    tax-qualified invoices; the first seller is the marketplace itself.
    """

    code: str
    marketplace_id: str
    marketplace_ids: frozenset[str]
    currency: str
    order_prefixes: tuple[str, ...]
    seller_name: str
    seller_address: tuple[str, ...]
    tax_rates: tuple[Decimal, ...]
    customers: tuple[BillTo, ...]
    issuer: Party | None = None
    sellers: tuple[Party, ...] = ()


NA = RegionProfile(
    code="NA",
    marketplace_id="ATVPDKIKX0DER",
    marketplace_ids=frozenset({"ATVPDKIKX0DER", "A2EUQ1WTGCTBG2", "A1AM78C64UM0Y8"}),
    currency="USD",
    order_prefixes=("111", "112", "113", "114"),
    seller_name="Amazon.com Services LLC",
    seller_address=("410 Terry Ave N", "Seattle, WA 98109", "US"),
    tax_rates=(Decimal(0), Decimal("0.06"), Decimal("0.0625"), Decimal("0.0725"), Decimal("0.08875")),
    customers=(
        BillTo("Northwind Traders LLC", "Dana Whitfield", "1200 Harbor Blvd Suite 400", "Oakland", "CA", "94607", "US"),
        BillTo("Contoso Dental Group", "Ravi Menon", "88 Elm Street", "Hartford", "CT", "06103", "US"),
        BillTo("Fabrikam Field Services Inc", "Lena Ortiz", "4410 Commerce Pkwy", "Austin", "TX", "78744", "US"),
        BillTo("Tailspin Aviation Supply", "Marcus Bell", "9 Hangar Road", "Wichita", "KS", "67209", "US"),
    ),
)

JP = RegionProfile(
    code="JP",
    marketplace_id="A1VC38T7YXB528",
    # The JP host also serves Australia; a JP refresh token is valid for both.
    marketplace_ids=frozenset({"A1VC38T7YXB528", "A39IBJ37TRP1C6"}),
    currency="JPY",
    order_prefixes=("249", "250", "503"),
    seller_name=AMAZON_JAPAN.romaji,
    seller_address=("3-8-1 Shimomeguro, Meguro-ku", "Tokyo 153-0064", "JP"),
    tax_rates=(Decimal("0.1"), Decimal("0.08")),
    customers=(
        BillTo(
            "Sakura Trading K.K.",
            "Tanaka Hiroshi",
            "1-2-3 Marunouchi",
            "Chiyoda-ku",
            "Tokyo",
            "100-0005",
            "JP",
            "03-5201-1234",
        ),
        BillTo(
            "Fujimoto Seisakusho Co., Ltd.",
            "Suzuki Yumi",
            "4-5-6 Umeda, Kita-ku",
            "Osaka-shi",
            "Osaka",
            "530-0001",
            "JP",
            "06-6345-6789",
        ),
        BillTo(
            "Kitakaze Dental Clinic",
            "Sato Kenji",
            "7-8 Kita 3-jo Nishi, Chuo-ku",
            "Sapporo-shi",
            "Hokkaido",
            "060-0003",
            "JP",
            "011-222-3344",
        ),
        BillTo(
            "Minato Logistics G.K.",
            "Watanabe Aiko",
            "2-1-1 Konan",
            "Minato-ku",
            "Tokyo",
            "108-0075",
            "JP",
            "03-6712-9876",
        ),
    ),
    issuer=AMAZON_JAPAN,
    sellers=JP_SELLERS,
)

REGIONS: dict[str, RegionProfile] = {"NA": NA, "JP": JP}
