"""The manage page's words for quiet hours, the daily cap and followed stories (en, sw)."""

from __future__ import annotations

from typing import Final

_CHOICES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "quietTitle": "Quiet hours",
        "quietText": "No routine alerts at night: they wait and arrive when your quiet hours "
        "end (if still news by then). Breaking news always comes through.",
        "quietOn": "Use quiet hours",
        "quietFrom": "From",
        "quietUntil": "until",
        "zone": "Times are in your time zone: {zone}.",
        "capTitle": "How many alerts",
        "capLabel": "At most this many routine alerts a day",
        "capNone": "No limit",
        "choicesSave": "Save quiet hours and limit",
        "choicesSaved": "Saved. {summary}",
        "summaryQuiet": "Quiet from {start} to {end}.",
        "summaryNoQuiet": "No quiet hours.",
        "summaryCap": "At most {cap} routine alerts a day.",
        "summaryNoCap": "No daily limit.",
        "choicesFailed": "We couldn't save that just now. Please try again later.",
        "zoneUnknown": "Your browser's time zone ({zone}) is not one we know, so quiet hours "
        "cannot be set from this browser. Turn quiet hours off, or set your device's time zone "
        "to your city's.",
        "quietSame": "Quiet hours need an end time different from the start time.",
        "quietMissing": "Choose both times for quiet hours, or turn quiet hours off.",
        "storiesTitle": "Stories you can follow",
        "storiesText": "Follow a developing story to get its updates; each update replaces the "
        "last one on your screen.",
        "storiesNone": "There are no stories to follow right now.",
        "follow": "Follow",
        "unfollow": "Stop following",
        "followingLabel": "Following",
    },
    "sw": {
        "quietTitle": "Saa za utulivu",
        "quietText": "Hakuna arifa za kawaida usiku: zinasubiri na kufika saa zako za utulivu "
        "zikiisha (kama bado ni habari). Habari muhimu zinafika wakati wote.",
        "quietOn": "Tumia saa za utulivu",
        "quietFrom": "Kuanzia",
        "quietUntil": "hadi",
        "zone": "Saa ziko kwa saa za eneo lako: {zone}.",
        "capTitle": "Idadi ya arifa",
        "capLabel": "Arifa za kawaida zisizozidi hizi kwa siku",
        "capNone": "Bila kikomo",
        "choicesSave": "Hifadhi saa za utulivu na kikomo",
        "choicesSaved": "Imehifadhiwa. {summary}",
        "summaryQuiet": "Utulivu kuanzia {start} hadi {end}.",
        "summaryNoQuiet": "Hakuna saa za utulivu.",
        "summaryCap": "Arifa za kawaida zisizozidi {cap} kwa siku.",
        "summaryNoCap": "Bila kikomo cha kila siku.",
        "choicesFailed": "Hatukuweza kuhifadhi hilo sasa hivi. Tafadhali jaribu tena baadaye.",
        "zoneUnknown": "Hatutambui saa za eneo za kivinjari chako ({zone}), kwa hivyo saa za "
        "utulivu haziwezi kuwekwa kutoka kivinjari hiki. Zima saa za utulivu, au weka saa za "
        "eneo za kifaa chako ziwe za mji wako.",
        "quietSame": "Saa za utulivu zinahitaji saa ya mwisho tofauti na saa ya kuanza.",
        "quietMissing": "Chagua saa zote mbili za utulivu, au uzime saa za utulivu.",
        "storiesTitle": "Habari unazoweza kufuatilia",
        "storiesText": "Fuatilia habari inayoendelea upate taarifa zake mpya; kila taarifa "
        "inachukua nafasi ya iliyotangulia kwenye skrini yako.",
        "storiesNone": "Hakuna habari za kufuatilia kwa sasa.",
        "follow": "Fuatilia",
        "unfollow": "Acha kufuatilia",
        "followingLabel": "Unafuatilia",
    },
}


def choice_texts(lang: str) -> dict[str, str]:
    return dict(_CHOICES.get(lang, _CHOICES["en"]))
