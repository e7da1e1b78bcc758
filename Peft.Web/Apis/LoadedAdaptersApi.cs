using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using Peft.Training.Serving.Adapters;
using Peft.Web.Serving;

namespace Peft.Web.Apis;

public sealed record LoadedAdapterDto(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("tier")] string Tier,
    [property: JsonPropertyName("size_bytes")] long SizeBytes,
    [property: JsonPropertyName("rank")] int Rank,
    [property: JsonPropertyName("pinned")] bool Pinned,
    [property: JsonPropertyName("active_sequences")] int ActiveSequences,
    [property: JsonPropertyName("last_used")] DateTimeOffset LastUsed,
    [property: JsonPropertyName("requests")] long Requests,
    [property: JsonPropertyName("tokens")] long Tokens)
{
    public static LoadedAdapterDto From(AdapterInfo a) => new(a.Key, a.Tier, a.Bytes, a.Rank, a.Pinned, a.ActiveSequences, a.LastUsed, a.Requests, a.Tokens);
}

/// <summary>What the server holds in memory: list, preload, unload, pin (the list LoRAX lacks).</summary>
public static class LoadedAdaptersApi
{
    public static RouteGroupBuilder MapLoadedAdaptersApi(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/adapters").WithTags("Adapters");
        group.MapGet("/", (InferenceService s) => TypedResults.Ok(s.Cache.Snapshot().Select(LoadedAdapterDto.From).ToList()))
            .WithName("ListLoadedAdapters")
            .WithSummary("Adapter versions in memory")
            .WithDescription("One row per version the cache knows: tier (device = attached to the model, host = in memory, disk), size, rank, pinned, sequences using it now, last use, requests and tokens served.");
        group.MapPost("/{reference}/preload", PreloadAsync)
            .WithName("PreloadAdapter").WithSummary("Reads an adapter and attaches it to the model ahead of requests")
            .WithDescription("Resolves `reference` (`name`, `name@N`, `name@alias`), reads it off the serving loop and attaches it, so the first request does not pay the load. 404 unknown adapter, 409 adapter for another base or with shapes that do not fit.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        group.MapDelete("/{reference}", UnloadAsync)
            .WithName("UnloadAdapter").WithSummary("Detaches and forgets an idle adapter version (409 while sequences use it)")
            .WithDescription("Frees the version's device and host memory; a later request loads it again from disk. Refused with 409 while running sequences use it.")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict);
        group.MapPut("/{reference}/pin", (string reference, InferenceService s, CancellationToken ct) => PinAsync(reference, true, s, ct))
            .WithName("PinAdapter").WithSummary("Keeps a loaded adapter version from eviction")
            .WithDescription("A pinned version stays in its tier whatever the memory budget; `reference` is `name`, `name@N` or `name@alias`. 404 when the adapter is unknown.");
        group.MapDelete("/{reference}/pin", (string reference, InferenceService s, CancellationToken ct) => PinAsync(reference, false, s, ct))
            .WithName("UnpinAdapter").WithSummary("Lets a loaded adapter version be evicted again")
            .WithDescription("Undoes a pin: the version takes part in least-recently-used eviction again. 404 when the adapter is unknown.");
        return group;
    }

    private static async Task<Ok<LoadedAdapterDto>> PreloadAsync(string reference, InferenceService s, CancellationToken ct)
    {
        using var lease = await s.Cache.AcquireAsync(reference, ct);
        await s.Engine.PreloadAsync(lease);
        return TypedResults.Ok(LoadedAdapterDto.From(s.Cache.Snapshot().Single(a => a.Key == lease.Entry.Key)));
    }

    private static async Task<Results<NoContent, NotFound<string>, Conflict<string>>> UnloadAsync(string reference, InferenceService s, CancellationToken ct)
    {
        var location = await s.Cache.Source.ResolveAsync(AdapterReference.Parse(reference), ct);
        if (!s.Cache.Snapshot().Any(a => a.Key == location.Key)) return TypedResults.NotFound($"{location.Key} is not loaded");
        return await s.Engine.UnloadAsync(location.Key) ? TypedResults.NoContent() : TypedResults.Conflict($"{location.Key} is in use by running sequences");
    }

    private static async Task<Results<NoContent, NotFound<string>>> PinAsync(string reference, bool pinned, InferenceService s, CancellationToken ct) =>
        await s.Cache.PinAsync(reference, pinned, ct) ? TypedResults.NoContent() : TypedResults.NotFound($"{reference} is not loaded; preload it first");
}
