"""Country names as sanction lists spell them -> ISO 3166-1 alpha-2 codes.

The UN list uses the UN's own short names ("Iran (Islamic Republic of)", "Türkiye", "China,
Hong Kong Special Administrative Region"); other lists use common names. A name not found here
is kept as text where the document has room for it (an address) and otherwise left out: a wrong
code would be worse than none. ``XK`` (Kosovo) is a user-assigned code in common use.
"""

from __future__ import annotations

import unicodedata

_NAMES: dict[str, tuple[str, ...]] = {
    "AD": ("Andorra",), "AE": ("United Arab Emirates", "UAE"), "AF": ("Afghanistan",),
    "AG": ("Antigua and Barbuda",), "AL": ("Albania",), "AM": ("Armenia",), "AO": ("Angola",),
    "AR": ("Argentina",), "AT": ("Austria",), "AU": ("Australia",), "AZ": ("Azerbaijan",),
    "BA": ("Bosnia and Herzegovina",), "BB": ("Barbados",), "BD": ("Bangladesh",),
    "BE": ("Belgium",), "BF": ("Burkina Faso",), "BG": ("Bulgaria",), "BH": ("Bahrain",),
    "BI": ("Burundi",), "BJ": ("Benin",), "BN": ("Brunei Darussalam", "Brunei"),
    "BO": ("Bolivia (Plurinational State of)", "Bolivia"), "BR": ("Brazil",),
    "BS": ("Bahamas",), "BT": ("Bhutan",), "BW": ("Botswana",), "BY": ("Belarus",),
    "BZ": ("Belize",), "CA": ("Canada",),
    "CD": ("Democratic Republic of the Congo", "Congo, Democratic Republic of the", "DRC"),
    "CF": ("Central African Republic",), "CG": ("Congo", "Republic of the Congo"),
    "CH": ("Switzerland",), "CI": ("Côte d'Ivoire", "Cote d'Ivoire", "Ivory Coast"),
    "CL": ("Chile",), "CM": ("Cameroon",), "CN": ("China",), "CO": ("Colombia",),
    "CR": ("Costa Rica",), "CU": ("Cuba",), "CV": ("Cabo Verde", "Cape Verde"),
    "CY": ("Cyprus",), "CZ": ("Czechia", "Czech Republic"), "DE": ("Germany",),
    "DJ": ("Djibouti",), "DK": ("Denmark",), "DM": ("Dominica",),
    "DO": ("Dominican Republic",), "DZ": ("Algeria",), "EC": ("Ecuador",),
    "EE": ("Estonia",), "EG": ("Egypt",), "ER": ("Eritrea",), "ES": ("Spain",),
    "ET": ("Ethiopia",), "FI": ("Finland",), "FJ": ("Fiji",),
    "FM": ("Micronesia (Federated States of)", "Micronesia"), "FR": ("France",),
    "GA": ("Gabon",), "GB": ("United Kingdom of Great Britain and Northern Ireland",
                             "United Kingdom", "UK", "Great Britain"),
    "GD": ("Grenada",), "GE": ("Georgia",), "GH": ("Ghana",), "GM": ("Gambia",),
    "GN": ("Guinea",), "GQ": ("Equatorial Guinea",), "GR": ("Greece",), "GT": ("Guatemala",),
    "GW": ("Guinea-Bissau",), "GY": ("Guyana",),
    "HK": ("China, Hong Kong Special Administrative Region", "Hong Kong"),
    "HN": ("Honduras",), "HR": ("Croatia",), "HT": ("Haiti",), "HU": ("Hungary",),
    "ID": ("Indonesia",), "IE": ("Ireland",), "IL": ("Israel",), "IN": ("India",),
    "IQ": ("Iraq",), "IR": ("Iran (Islamic Republic of)", "Iran", "Islamic Republic of Iran"),
    "IS": ("Iceland",), "IT": ("Italy",), "JM": ("Jamaica",), "JO": ("Jordan",),
    "JP": ("Japan",), "KE": ("Kenya",), "KG": ("Kyrgyzstan",), "KH": ("Cambodia",),
    "KI": ("Kiribati",), "KM": ("Comoros",), "KN": ("Saint Kitts and Nevis",),
    "KP": ("Democratic People's Republic of Korea", "North Korea", "Korea, North"),
    "KR": ("Republic of Korea", "South Korea", "Korea, South"), "KW": ("Kuwait",),
    "KZ": ("Kazakhstan",), "LA": ("Lao People's Democratic Republic", "Laos"),
    "LB": ("Lebanon",), "LC": ("Saint Lucia",), "LI": ("Liechtenstein",),
    "LK": ("Sri Lanka",), "LR": ("Liberia",), "LS": ("Lesotho",), "LT": ("Lithuania",),
    "LU": ("Luxembourg",), "LV": ("Latvia",), "LY": ("Libya", "Libyan Arab Jamahiriya"),
    "MA": ("Morocco",), "MC": ("Monaco",), "MD": ("Republic of Moldova", "Moldova"),
    "ME": ("Montenegro",), "MG": ("Madagascar",), "MH": ("Marshall Islands",),
    "MK": ("North Macedonia", "Macedonia"), "ML": ("Mali",), "MM": ("Myanmar", "Burma"),
    "MN": ("Mongolia",), "MO": ("China, Macao Special Administrative Region", "Macao", "Macau"),
    "MR": ("Mauritania",), "MT": ("Malta",), "MU": ("Mauritius",), "MV": ("Maldives",),
    "MW": ("Malawi",), "MX": ("Mexico",), "MY": ("Malaysia",), "MZ": ("Mozambique",),
    "NA": ("Namibia",), "NE": ("Niger",), "NG": ("Nigeria",), "NI": ("Nicaragua",),
    "NL": ("Netherlands", "Netherlands (Kingdom of the)"), "NO": ("Norway",),
    "NP": ("Nepal",), "NR": ("Nauru",), "NZ": ("New Zealand",), "OM": ("Oman",),
    "PA": ("Panama",), "PE": ("Peru",), "PG": ("Papua New Guinea",), "PH": ("Philippines",),
    "PK": ("Pakistan",), "PL": ("Poland",), "PS": ("State of Palestine", "Palestine",
                                                    "Occupied Palestinian Territory"),
    "PT": ("Portugal",), "PW": ("Palau",), "PY": ("Paraguay",), "QA": ("Qatar",),
    "RO": ("Romania",), "RS": ("Serbia",), "RU": ("Russian Federation", "Russia"),
    "RW": ("Rwanda",), "SA": ("Saudi Arabia",), "SB": ("Solomon Islands",),
    "SC": ("Seychelles",), "SD": ("Sudan",), "SE": ("Sweden",), "SG": ("Singapore",),
    "SI": ("Slovenia",), "SK": ("Slovakia",), "SL": ("Sierra Leone",), "SM": ("San Marino",),
    "SN": ("Senegal",), "SO": ("Somalia",), "SR": ("Suriname",), "SS": ("South Sudan",),
    "ST": ("Sao Tome and Principe",), "SV": ("El Salvador",),
    "SY": ("Syrian Arab Republic", "Syria"), "SZ": ("Eswatini", "Swaziland"),
    "TD": ("Chad",), "TG": ("Togo",), "TH": ("Thailand",), "TJ": ("Tajikistan",),
    "TL": ("Timor-Leste", "East Timor"), "TM": ("Turkmenistan",), "TN": ("Tunisia",),
    "TO": ("Tonga",), "TR": ("Türkiye", "Turkey"), "TT": ("Trinidad and Tobago",),
    "TV": ("Tuvalu",), "TW": ("Taiwan",), "TZ": ("United Republic of Tanzania", "Tanzania"),
    "UA": ("Ukraine",), "UG": ("Uganda",),
    "US": ("United States of America", "United States", "USA"), "UY": ("Uruguay",),
    "UZ": ("Uzbekistan",), "VA": ("Holy See",),
    "VC": ("Saint Vincent and the Grenadines",),
    "VE": ("Venezuela (Bolivarian Republic of)", "Venezuela"),
    "VG": ("British Virgin Islands", "Virgin Islands, British"), "VN": ("Viet Nam", "Vietnam"),
    "VU": ("Vanuatu",), "WS": ("Samoa",), "XK": ("Kosovo",), "YE": ("Yemen",),
    "ZA": ("South Africa",), "ZM": ("Zambia",), "ZW": ("Zimbabwe",),
}


def _key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).casefold().replace("’", "'")
    return " ".join(folded.split())


_BY_NAME = {_key(name): code for code, names in _NAMES.items() for name in names}
CODES = frozenset(_NAMES)


def country_code(name: str | None) -> str | None:
    """The alpha-2 code of a country name (or of a code already given), else None."""
    if not name:
        return None
    text = name.strip()
    if len(text) == 2 and text.isupper():
        return text if text in CODES else None
    return _BY_NAME.get(_key(text))
