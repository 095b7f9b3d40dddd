"""The quality program: sampling finished calls for review, scorecards, evaluations.

The rules and forms are typed config values (:class:`~ccswitch.model.SamplingRules`,
:class:`~ccswitch.model.Scorecard` with its sections and questions), loaded from a
dialplan file's ``qa:`` section by :mod:`ccswitch.config.qa`:
``check_config(path).config.dialplan.qa`` (None without one) has ``.sampling`` and
``.scorecards`` (name -> Scorecard) and ``.scorecard_for(queue, route)`` (the form
for a call).

The API for other parts (the web portal):

``store.QaStore(target)``
    Opens the CDR database (a SQLite ``Path`` or a ``postgresql://`` URL; migrated to
    the newest revision) and is a :class:`~ccswitch.cdr.store.CdrStore` too (``get``,
    ``rows``, ``close``). Thread-safe; errors are ``CdrUnavailable`` (unreachable) and
    ``CdrError`` (anything else), both ``CCSwitchError``; answers that do not fit
    their form raise ``scoring.EvaluationError``. Times are epoch ms.

    - ``samples(since_ms=, until_ms=, queue=, agent=, vendor=, reason=, min_score=,
      max_score=, sampled=True, exemplary=None, call_id=None, limit=1000)`` -> list of
      ``Sample`` (the call's queue, route, vendor, agent, caller, talk time, recording
      path, sample reason, exemplary flag, number of evaluations and mean score);
      ``sample(call_id)`` -> one or None;
    - ``sample_call(call_id, rules, now_ms=)`` -> ``sampling.Decision`` (flags it when
      sampled), ``flag(call_id, decision, now_ms=)``;
    - ``evaluate(call_id=, reviewer=, form=, answers=, comments=(), session="",
      now_ms=)`` -> ``Evaluation`` (creates, or updates the same call + reviewer +
      session), ``evaluations(call_id=, session=)``, ``form(name, version)``,
      ``save_form(form)``, ``scores(since_ms=, until_ms=)``;
    - ``calibration(call_id, session)`` -> ``scoring.Calibration`` (scores per
      reviewer, minimum, maximum, stdev, per-question disagreement);
    - ``set_exemplary(call_id, flag, by=, now_ms=)``, ``exemplary_calls()``.

    An answer is ``"yes"`` / ``"no"`` / ``"na"`` or an int on the question's scale;
    a comment is ``store.Comment(at_ms=, text=)``.

``kpi.load_qa_kpis(store, since_ms=, until_ms=, period="day" | "week")``
    -> list of ``kpi.QaKpi`` per period and route (``inhouse`` / ``vendor:<name>``):
    calls, repeat-caller rate (FCR proxy), QA score mean and count. ``kpi.qa_kpis`` is
    the same on rows and scores already read.

``sampling.decide(rules, facts)`` and ``scoring.score(form, answers)`` /
``scoring.calibrate(...)`` are the pure cores; ``flagging.SampleFlagger`` is the node's
hook at call end and ``cli`` is ``ccswitch qa``.
"""
