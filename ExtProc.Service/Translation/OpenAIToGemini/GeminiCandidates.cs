using System.Text.Json;
using ExtProc.Translation.Common;

namespace ExtProc.Translation.OpenAIToGemini;

/// <summary>
/// The candidates of one Gemini response (or stream event) and their parts, read and checked in the
/// top-level pass so writing walks them without reading again. A candidate, parts array or part that is
/// not what it must be marks the whole set <see cref="Malformed"/> rather than throwing there: the caller
/// looks at the response's <c>error</c> first, as it did when the candidates were read after the top level.
/// Pooled: dispose it.
/// </summary>
internal struct GeminiCandidates : IDisposable
{
    private PooledList<GeminiCandidate> _candidates;
    private PooledList<GeminiPart> _parts;

    public bool Malformed { readonly get; private set; }

    public readonly int Count => _candidates.Count;

    public readonly ref readonly GeminiCandidate Candidate(int index) => ref _candidates[index];

    /// <summary>A part of a candidate (from <see cref="GeminiCandidate.FirstPart"/>).</summary>
    public readonly ref readonly GeminiPart Part(int index) => ref _parts[index];

    /// <summary>Reads the value of the <c>candidates</c> property the reader is on; returns its slice.</summary>
    public JsonSlice Read(ref Utf8JsonReader reader)
    {
        _candidates.Clear();
        _parts.Clear();
        Malformed = false;
        var probe = reader;
        try
        {
            var slice = ReadChecked(ref probe);
            reader = probe;
            return slice;
        }
        catch (JsonException)
        {
            // Malformed as Gemini, or not JSON at all: reading it again over the original reader tells which.
            _candidates.Clear();
            _parts.Clear();
            Malformed = true;
            return JsonRead.PropertyValue(ref reader, 0);
        }
    }

    public void Dispose()
    {
        _candidates.Dispose();
        _parts.Dispose();
    }

    private JsonSlice ReadChecked(ref Utf8JsonReader reader)
    {
        reader.Read();
        var start = (int)reader.TokenStartIndex;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("candidates must be an array.");
        }

        var position = 0;
        while (JsonRead.NextElement(ref reader))
        {
            var candidate = GeminiCandidate.Read(ref reader, 0, position++, ref _parts);
            _candidates.Add(candidate);
        }

        return new JsonSlice(start, (int)reader.BytesConsumed - start);
    }
}
