import { HttpClient, HttpHeaders } from '@angular/common/http';
import { Injectable, InjectionToken, inject } from '@angular/core';
import { Observable } from 'rxjs';

export const API_BASE_URL = new InjectionToken<string>('API_BASE_URL');

export interface Product {
  id: number;
  name: string;
  price: string;
}

export interface CheckoutSummary {
  items: number;
  total: string;
}

// Sent the way the site's real front end sends its calls: with the session cookie and a custom
// header, so the browser sends a CORS preflight before each one.
const OPTIONS = { withCredentials: true, headers: new HttpHeaders({ 'X-Client-Version': '1.0' }) };

/** The example Django app's demo API, behind the gateway. */
@Injectable({ providedIn: 'root' })
export class ShopApi {
  private readonly http = inject(HttpClient);
  private readonly base = inject(API_BASE_URL);

  products(): Observable<{ products: Product[] }> {
    return this.http.get<{ products: Product[] }>(`${this.base}/api/products`, OPTIONS);
  }

  addToCart(productId: number): Observable<{ added: number }> {
    return this.http.post<{ added: number }>(`${this.base}/api/cart`, { product_id: productId }, OPTIONS);
  }

  checkout(): Observable<CheckoutSummary> {
    return this.http.get<CheckoutSummary>(`${this.base}/api/checkout/`, OPTIONS);
  }

  placeOrder(): Observable<{ order: string }> {
    return this.http.post<{ order: string }>(`${this.base}/api/checkout/`, {}, OPTIONS);
  }
}
