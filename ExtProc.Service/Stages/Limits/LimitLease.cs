using ExtProc.Storage;
using ExtProc.Tenancy.Config;

namespace ExtProc.Stages.Limits;

/// <summary>What one request reserved: the counters and their rules, the estimates, and whether it is settled.</summary>
internal sealed class LimitLease
{
    public LimitLease(string reservationId, LimitCounter[] counters, LimitRuleConfig[] rules, long promptEstimate, PriceConfig? price, string? model)
    {
        ReservationId = reservationId;
        Counters = counters;
        Rules = rules;
        PromptEstimate = promptEstimate;
        Price = price;
        Model = model;
    }

    public string ReservationId { get; }

    public LimitCounter[] Counters { get; }

    public LimitRuleConfig[] Rules { get; }

    public long PromptEstimate { get; }

    public PriceConfig? Price { get; }

    public string? Model { get; }

    public bool Settled { get; set; }

    /// <summary>True once the response headers said the body carries usage we must read.</summary>
    public bool ReadingResponse { get; set; }

    public bool StreamedResponse { get; set; }
}
