"""Reader texts: every word a reader sees from the widget and the manage page, in English and Kiswahili."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from flask import request

from config.settings import Settings, Topic
from core.subscriptions import READER_LANGUAGES as LANGUAGES

# Keys the widget and manage page look up. The English prompt texts can be overridden by the
# NEWSFLASH_PROMPT_* settings; everything else is written here once per language.
_TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Be the first to know.",
        "body": "Get breaking news alerts from us.",
        "accept": "Yes, Thanks",
        "dismiss": "Not now",
        "close": "Close",
        "more": "Choose topics",
        "legend": "Send me alerts about",
        "manage": "Manage alerts",
        "pickOne": "Choose at least one topic.",
        "working": "Turning on alerts\u2026",
        "slow": "Still waiting for your browser\u2026 If it shows a question about notifications, "
        "choose Allow.",
        "signedUp": "You're signed up. We'll send you alerts about {topics}.",
        "iosBody": "On iPhone and iPad, alerts only reach sites added to your Home Screen:",
        "iosStep1": "Tap Share (the square with an arrow).",
        "iosStep2": "Choose \u201cAdd to Home Screen\u201d, then Add.",
        "iosStep3": "Open us from your Home Screen and tap \u201cYes, Thanks\u201d.",
        "unsupported": "This browser can't receive news alerts. A recent Chrome, Edge, Firefox "
        "or Safari can.",
        "denied": "Notifications are blocked for this site, so we can't send you alerts. You can "
        "allow them in your browser's site settings.",
        "dismissed": "You didn't allow notifications, so alerts are not on. You can try again at "
        "any time.",
        "private": "This browser won't allow alerts here. This often happens in a private or "
        "incognito window: open the page in a normal window and try again.",
        "stale": "Alerts were set up earlier in this browser in a way that no longer works. "
        "Reload the page and try again.",
        "timeout": "Your browser took too long to answer, so alerts are not on. Please try again.",
        "push": "Your browser's push service didn't answer, so alerts are not on. Please try "
        "again later.",
        "network": "We couldn't reach our server, so alerts are not on yet. Please check your "
        "connection and try again.",
        "refused": "Our server couldn't sign you up just now, so alerts are not on. Please try "
        "again later.",
        "fallbackTitle": "News alert",
        "follow": "Follow this story",
        "following": "Following this story ✓",
        "followFailed": "We couldn't change that just now. Please try again.",
    },
    "sw": {
        "title": "Kuwa wa kwanza kujua.",
        "body": "Pokea arifa za habari muhimu kutoka kwetu.",
        "accept": "Ndiyo, Asante",
        "dismiss": "Sio sasa",
        "close": "Funga",
        "more": "Chagua mada",
        "legend": "Nitumie arifa kuhusu",
        "manage": "Dhibiti arifa",
        "pickOne": "Chagua angalau mada moja.",
        "working": "Tunawasha arifa\u2026",
        "slow": "Bado tunasubiri kivinjari chako\u2026 Kikikuuliza kuhusu arifa, chagua "
        "Ruhusu (Allow).",
        "signedUp": "Umejiandikisha. Tutakutumia arifa kuhusu {topics}.",
        "iosBody": "Kwenye iPhone na iPad, arifa hufika tu kwa tovuti uliyoongeza kwenye Skrini "
        "ya Mwanzo:",
        "iosStep1": "Gusa Share (mraba wenye mshale).",
        "iosStep2": "Chagua \u201cAdd to Home Screen\u201d, kisha Add.",
        "iosStep3": "Tufungue kutoka kwenye Skrini ya Mwanzo, kisha gusa \u201cNdiyo, Asante\u201d.",
        "unsupported": "Kivinjari hiki hakiwezi kupokea arifa za habari. Tumia toleo jipya la "
        "Chrome, Edge, Firefox au Safari.",
        "denied": "Arifa zimezuiwa kwa tovuti hii, kwa hivyo hatuwezi kukutumia arifa. Unaweza "
        "kuziruhusu kwenye mipangilio ya tovuti ya kivinjari chako.",
        "dismissed": "Hukuruhusu arifa, kwa hivyo arifa hazijawashwa. Unaweza kujaribu tena "
        "wakati wowote.",
        "private": "Kivinjari hiki hakiruhusu arifa hapa. Mara nyingi hii hutokea kwenye dirisha "
        "la faragha (incognito): fungua ukurasa kwenye dirisha la kawaida ujaribu tena.",
        "stale": "Arifa ziliwekwa awali kwenye kivinjari hiki kwa njia ambayo haifanyi kazi "
        "tena. Pakia ukurasa upya ujaribu tena.",
        "timeout": "Kivinjari chako kimechukua muda mrefu kujibu, kwa hivyo arifa hazijawashwa. "
        "Tafadhali jaribu tena.",
        "push": "Huduma ya arifa ya kivinjari chako haikujibu, kwa hivyo arifa hazijawashwa. "
        "Tafadhali jaribu tena baadaye.",
        "network": "Hatukuweza kufikia seva yetu, kwa hivyo arifa bado hazijawashwa. Tafadhali "
        "angalia mtandao wako ujaribu tena.",
        "refused": "Seva yetu haikuweza kukusajili sasa hivi, kwa hivyo arifa hazijawashwa. "
        "Tafadhali jaribu tena baadaye.",
        "fallbackTitle": "Arifa ya habari",
        "follow": "Fuatilia habari hii",
        "following": "Unafuatilia habari hii ✓",
        "followFailed": "Hatukuweza kubadilisha hilo sasa hivi. Tafadhali jaribu tena.",
    },
}


# The manage page's own words (it also uses the texts above for the opt-in and its errors).
_MANAGE: Final[dict[str, dict[str, str]]] = {
    "en": {
        "heading": "Your news alerts",
        "checking": "Checking the alerts in this browser\u2026",
        "save": "Save topics",
        "offTitle": "Stop all alerts",
        "offText": "You will stop receiving notifications from us in this browser. You can turn "
        "them on again here at any time.",
        "offButton": "Turn off alerts",
        "onButton": "Turn on alerts",
        "noPush": "This browser can't receive news alerts from us.",
        "isOff": "Alerts are off in this browser. Choose topics and turn them on below.",
        "isOn": "Alerts are on in this browser. You get alerts about: {topics}.",
        "noRecord": "Alerts are allowed in this browser, but we have no topics on record for it. "
        "Choose topics and save to receive alerts again.",
        "loadFailed": "We couldn't reach our server to load your topics. Please try again later.",
        "pickOneOrOff": "Choose at least one topic, or turn alerts off below.",
        "saved": "Saved. You will get alerts about: {topics}.",
        "saveFailed": "We couldn't save your topics just now. Please try again later.",
        "offState": "Alerts are off. You will not get any more notifications from us in this "
        "browser.",
        "turnedOff": "Alerts turned off.",
        "turnedOffLater": "Alerts turned off in this browser. Our server will forget it at the "
        "next alert.",
        "broken": "Something went wrong while checking this browser's alerts. Please reload the "
        "page.",
        "langTitle": "Language",
        "langIs": "Your alerts and this page are in English.",
        # On the page in another language: the button that switches the reader's alerts to this one.
        "langSwitch": "Get alerts in English",
        "langFailed": "We couldn't change the language just now. Please try again later.",
    },
    "sw": {
        "heading": "Arifa zako za habari",
        "checking": "Tunaangalia arifa kwenye kivinjari hiki\u2026",
        "save": "Hifadhi mada",
        "offTitle": "Zima arifa zote",
        "offText": "Hutapokea tena arifa kutoka kwetu kwenye kivinjari hiki. Unaweza kuziwasha "
        "tena hapa wakati wowote.",
        "offButton": "Zima arifa",
        "onButton": "Washa arifa",
        "noPush": "Kivinjari hiki hakiwezi kupokea arifa za habari kutoka kwetu.",
        "isOff": "Arifa zimezimwa kwenye kivinjari hiki. Chagua mada kisha uziwashe hapa chini.",
        "isOn": "Arifa zimewashwa kwenye kivinjari hiki. Unapokea arifa kuhusu: {topics}.",
        "noRecord": "Arifa zimeruhusiwa kwenye kivinjari hiki, lakini hatuna mada zako. Chagua "
        "mada kisha uhifadhi ili upokee arifa tena.",
        "loadFailed": "Hatukuweza kufikia seva yetu kupakia mada zako. Tafadhali jaribu tena "
        "baadaye.",
        "pickOneOrOff": "Chagua angalau mada moja, au uzime arifa hapa chini.",
        "saved": "Imehifadhiwa. Utapokea arifa kuhusu: {topics}.",
        "saveFailed": "Hatukuweza kuhifadhi mada zako sasa hivi. Tafadhali jaribu tena baadaye.",
        "offState": "Arifa zimezimwa. Hutapokea arifa zaidi kutoka kwetu kwenye kivinjari hiki.",
        "turnedOff": "Arifa zimezimwa.",
        "turnedOffLater": "Arifa zimezimwa kwenye kivinjari hiki. Seva yetu italisahau kwenye "
        "arifa inayofuata.",
        "broken": "Hitilafu imetokea tulipokuwa tukiangalia arifa za kivinjari hiki. Tafadhali "
        "pakia ukurasa upya.",
        "langTitle": "Lugha",
        "langIs": "Arifa zako na ukurasa huu ziko kwa Kiswahili.",
        "langSwitch": "Pokea arifa kwa Kiswahili",
        "langFailed": "Hatukuweza kubadilisha lugha sasa hivi. Tafadhali jaribu tena baadaye.",
    },
}

# The demo site's words around every reader page: its navigation and footer links. The manage
# page is in the reader's language from its <html> down, so these are too.
_CHROME: Final[dict[str, dict[str, str]]] = {
    "en": {
        "skip": "Skip to content",
        "sections": "Sections",
        "news": "News",
        "politics": "Politics",
        "business": "Business",
        "sport": "Sport",
        "alerts": "Alerts",
        "footerManage": "Manage your news alerts",
        "footerHome": "Back to the front page",
    },
    "sw": {
        "skip": "Ruka hadi maudhui",
        "sections": "Sehemu",
        "news": "Habari",
        "politics": "Siasa",
        "business": "Biashara",
        "sport": "Michezo",
        "alerts": "Arifa",
        "footerManage": "Dhibiti arifa zako za habari",
        "footerHome": "Rudi ukurasa wa mbele",
    },
}


def pick_language(asked: Iterable[str], default: str) -> str:
    """The first of the asked languages (tags like sw-KE, en-GB; best first) that we write in."""
    for tag in asked:
        primary = tag.strip().split(";")[0].split("-")[0].split("_")[0].lower()
        if primary in LANGUAGES:
            return primary
    return default


def reader_texts(settings: Settings, lang: str) -> dict[str, str]:
    """All reader texts in one language; English prompt texts as the settings say."""
    texts = dict(_TEXTS[lang])
    if lang == "en":
        texts.update(
            title=settings.prompt_title,
            body=settings.prompt_body,
            accept=settings.prompt_accept,
            dismiss=settings.prompt_dismiss,
        )
    return texts


def manage_texts(settings: Settings, lang: str) -> dict[str, str]:
    """What the manage page says, in one language."""
    return {**reader_texts(settings, lang), **_MANAGE[lang]}


def language_switches(lang: str) -> list[tuple[str, str]]:
    """The manage page's ways to another language for the reader's alerts: (language, its own
    words for the switch), every language but `lang`."""
    return [(other, _MANAGE[other]["langSwitch"]) for other in LANGUAGES if other != lang]


def chrome_texts(lang: str) -> dict[str, str]:
    """The demo site's navigation and footer words, in one language."""
    return dict(_CHROME[lang])


def request_language(settings: Settings) -> str:
    """`?lang=` (the widget sends the page's and the browser's languages, best first), else the
    Accept-Language header, else NEWSFLASH_DEFAULT_LANG."""
    asked = request.args.get("lang")
    if asked:
        return pick_language(asked.split(","), settings.default_lang)
    return pick_language((tag for tag, _ in request.accept_languages), settings.default_lang)


def topic_name(topic: Topic, lang: str) -> str:
    return topic.name_in(lang)
